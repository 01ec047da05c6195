"""shared/workflows: the published workflow files, and `.published.json`, who published each
and when:

    {"comfy_init_workflows": 1,
     "workflows": {"<name>": {"published_at": UTC, "published_by": "user@host", "instance": id, "bytes": n}}}

Written only under `shared/workflows/.lock`, read again under it, replaced atomically. A damaged
index (one that does not parse, even one nested too deeply for json) is not fatal: the files are the workflows; the index only says where they came from.
"""

import json
import os
import socket

from comfy_init.errors import ComfyInitError
from comfy_init.store.files import read_regular, write_atomic

VERSION = 1
_KEY = "comfy_init_workflows"


def read_index(layout):
    """{name: record}; empty when missing or damaged."""
    try:
        data = read_regular(layout.shared_workflows_index)
        document = json.loads(data) if data is not None else {}
    except (ComfyInitError, ValueError, UnicodeDecodeError, RecursionError):
        return {}  # damaged (not JSON, or nested too deeply to parse): rebuilt from the next publish
    records = document.get("workflows") if isinstance(document, dict) else None
    return {k: v for k, v in records.items() if isinstance(v, dict)} if isinstance(records, dict) else {}


def write_index(layout, records):
    """Replace the index (call under shared_workflows_lock)."""
    document = {_KEY: VERSION, "workflows": dict(sorted(records.items()))}
    write_atomic(layout.shared_workflows_index, (json.dumps(document, indent=2) + "\n").encode())


def publisher():
    """Who publishes: the login name (or uid) and the host name."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        try:
            import pwd

            user = pwd.getpwuid(os.geteuid()).pw_name
        except (KeyError, ImportError):
            user = f"uid {os.geteuid()}"
    return f"{user}@{socket.gethostname()}"


def names_in(folder):
    """Workflow names (relative, without .json) of the *.json files under `folder`; dot names and
    links are skipped (ComfyUI refuses user files that resolve outside the user folder)."""
    found, stack = [], [("", folder)]
    while stack:
        prefix, directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((prefix + entry.name + "/", entry.path))
                    elif entry.is_file(follow_symlinks=False) and entry.name.endswith(".json"):
                        found.append(prefix + entry.name[:-5])
        except OSError:
            continue
    return sorted(found)
