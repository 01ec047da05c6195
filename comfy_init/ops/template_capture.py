"""What `template create` takes from an instance: its settings files with the secrets left out, and
its custom node list (where each came from, and its requirements).

A secret is a key whose name contains token, secret, password, passwd, api_key, apikey, auth or
credential, or has `key` as a whole word (`civitai_key`, `hf.key`, `openaiKey`; not `Keybinding`),
in any letter case; and the user:password part of a URL (a git remote, an index URL in a
requirements file). The value is left out of the template, the key is reported.
"""

import json
import os
import re
import tomllib
from urllib.parse import urlsplit, urlunsplit

from comfy_init.errors import ComfyInitError, DataError
from comfy_init.ops import git
from comfy_init.problems import Problem
from comfy_init.store.files import read_regular

_SECRET_PARTS = ("token", "secret", "password", "passwd", "api_key", "apikey", "auth", "credential")
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_INI_KEY = re.compile(r"^\s*([^=:\s;#\[][^=:]*?)\s*[=:]")
_COMBO_SETTINGS = ("Comfy.Keybinding.",)
_URL_CREDENTIALS = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s]+)@")


def is_secret_key(name, combos=False):
    """Whether a setting named `name` holds a secret. In key combinations (`combos`: the
    keybindings file, `Comfy.Keybinding.*` settings) `key` names a keyboard key, not a credential."""
    lowered = name.lower()
    if any(part in lowered for part in _SECRET_PARTS):
        return True
    return not combos and any(word.lower() == "key" for word in _WORDS.findall(name))


# -- settings files ----------------------------------------------------------------------------

def scrub_json(relative, data):
    """(bytes to store, [secret keys left out]) for a JSON settings file; the bytes are the
    original ones when nothing was left out. invalid-data (65) when it is not JSON."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise DataError(Problem("invalid-data", f"is not valid JSON ({error}), so it cannot be captured",
                                path=relative, fix="fix or remove the file in the instance, then try again")) from None
    removed = []
    cleaned = _drop_secrets(document, "", removed, combos=relative.endswith("keybindings.json"))
    if not removed:
        return data, []
    return (json.dumps(cleaned, indent=4, ensure_ascii=False) + "\n").encode("utf-8"), removed


def _drop_secrets(value, where, removed, combos):
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            path = f"{where}/{key}" if where else key
            if is_secret_key(key, combos):
                removed.append(path)
            else:
                kept[key] = _drop_secrets(item, path, removed, combos or key.startswith(_COMBO_SETTINGS))
        return kept
    if isinstance(value, list):
        return [_drop_secrets(item, f"{where}[{index}]", removed, combos) for index, item in enumerate(value)]
    if isinstance(value, str):
        text, had = scrub_url_text(value)
        if had:
            removed.append(f"{where} (URL credentials)")
        return text
    return value


def scrub_ini(data):
    """(bytes to store, [secret keys left out]) for an INI file, line by line: comments, order and
    every other line stay as they were; a secret's line (and its continuation lines) goes."""
    kept, removed, dropping, section = [], [], False, ""
    for line in data.decode("utf-8", errors="surrogateescape").splitlines(keepends=True):
        stripped = line.strip()
        if dropping and line[:1] in (" ", "\t") and stripped:
            continue  # a continuation of the value left out
        dropping = False
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
        match = _INI_KEY.match(line)
        if match and not stripped.startswith(("#", ";")) and is_secret_key(match.group(1)):
            removed.append(f"[{section}] {match.group(1)}" if section else match.group(1))
            dropping = True
            continue
        text, had = scrub_url_text(line)
        if had:
            removed.append(f"[{section}] {match.group(1) if match else stripped[:40]} (URL credentials)")
        kept.append(text)
    return "".join(kept).encode("utf-8", errors="surrogateescape"), removed


def scrub_url_text(text):
    """`text` with the user:password@ part of every URL in it removed, and whether there was one."""
    cleaned = _URL_CREDENTIALS.sub(r"\1", text)
    return cleaned, cleaned != text


def scrub_remote(url):
    """A git remote without credentials (scp-style `git@host:path` is an ssh user, kept)."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])), True
    return url, False


# -- custom nodes ------------------------------------------------------------------------------

def capture_nodes(custom_nodes):
    """(nodes, secrets) for the custom_nodes folder: one entry per folder or .py file (hidden
    ones, such as ComfyUI-Manager's .disabled/, and __pycache__ left out), sorted by name."""
    try:
        entries = sorted(os.scandir(custom_nodes), key=lambda e: e.name)
    except FileNotFoundError:
        return [], []
    nodes, secrets = [], []
    for entry in entries:
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir(follow_symlinks=False):
            nodes.append(_folder_node(entry.path, entry.name, secrets))
        elif entry.is_file(follow_symlinks=False) and entry.name.endswith(".py"):
            nodes.append({"name": entry.name, "source": "file", "git": None, "registry": None, "requirements": []})
    return nodes, secrets


def _folder_node(path, name, secrets):
    origin = git.checkout_origin(path)
    git_info = None
    if origin is not None:
        remote, had = scrub_remote(origin[0])
        if had:
            secrets.append({"file": f"custom_nodes/{name}/.git/config", "key": "remote URL credentials"})
        git_info = {"remote": remote, "commit": origin[1]}
    registry = _registry_info(path)
    if git_info is not None:
        source = "git"
    elif registry is not None and os.path.lexists(os.path.join(path, ".tracking")):
        source = "registry"
    else:
        source = "folder"
    return {"name": name, "source": source, "git": git_info, "registry": registry,
            "requirements": _requirements(path, name, secrets)}


def _registry_info(path):
    """The node's registry id, version and publisher from its pyproject.toml ([project] name and
    version, [tool.comfy] PublisherId), or None without one."""
    data = _read_quietly(os.path.join(path, "pyproject.toml"))
    if data is None:
        return None
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    project = document.get("project") if isinstance(document.get("project"), dict) else {}
    comfy = document.get("tool", {}).get("comfy", {}) if isinstance(document.get("tool"), dict) else {}
    if not isinstance(project.get("name"), str):
        return None
    version = project.get("version")
    publisher = comfy.get("PublisherId") if isinstance(comfy, dict) else None
    return {"id": project["name"], "version": version if isinstance(version, str) else None,
            "publisher": publisher if isinstance(publisher, str) else None}


def _requirements(path, name, secrets):
    data = _read_quietly(os.path.join(path, "requirements.txt"))
    if data is None:
        return []
    lines = []
    for raw in data.decode("utf-8", errors="replace").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        line, had = scrub_url_text(line)
        if had:
            secrets.append({"file": f"custom_nodes/{name}/requirements.txt", "key": "URL credentials"})
        lines.append(line)
    return lines


def _read_quietly(path):
    """A node's own file, or None when it is missing or not a plain file (a link is not followed)."""
    try:
        return read_regular(path)
    except ComfyInitError:
        return None


# -- keeping a target's own secrets at apply -------------------------------------------------------

def keep_own_secrets(relative, existing, new):
    """(`new` with the secrets `existing` holds and `new` lacks put back, [their keys]): a template
    carries no secrets, so applying it keeps the instance's own (top-level JSON keys; INI lines, in
    their section). `new` unchanged when `existing` does not parse."""
    if relative.endswith(".json"):
        return _keep_json_secrets(existing, new)
    return _keep_ini_secrets(existing, new)


def _keep_json_secrets(existing, new):
    try:
        old, document = json.loads(existing.decode("utf-8")), json.loads(new.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return new, []
    if not isinstance(old, dict) or not isinstance(document, dict):
        return new, []
    kept = [key for key in old if is_secret_key(key) and key not in document]
    if not kept:
        return new, []
    document.update({key: old[key] for key in kept})
    return (json.dumps(document, indent=4, ensure_ascii=False) + "\n").encode("utf-8"), kept


def _ini_secret_lines(data):
    """{section: [(key, line)]} for the secret lines of an INI file (with continuation lines)."""
    found, section, current = {}, "", None
    for line in data.decode("utf-8", errors="surrogateescape").splitlines(keepends=True):
        stripped = line.strip()
        if current is not None and line[:1] in (" ", "\t") and stripped:
            current[1].append(line)
            continue
        current = None
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
        match = _INI_KEY.match(line)
        if match and not stripped.startswith(("#", ";")) and is_secret_key(match.group(1)):
            current = (match.group(1), [line if line.endswith("\n") else line + "\n"])
            found.setdefault(section, []).append(current)
    return found


def _keep_ini_secrets(existing, new):
    wanted = _ini_secret_lines(existing)
    present = {(section, key) for section, rows in _ini_secret_lines(new).items() for key, _ in rows}
    out, section, kept = [], "", []

    def put_back(name):
        for key, lines in wanted.pop(name, []):
            if (name, key) not in present:
                out.extend(lines)
                kept.append(f"[{name}] {key}" if name else key)

    text = new.decode("utf-8", errors="surrogateescape")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    put_back("")
    for line in lines:
        out.append(line)
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            put_back(section)
    for name in list(wanted):
        if any((name, key) not in present for key, _ in wanted[name]):
            out.append(f"[{name}]\n")
        put_back(name)
    return "".join(out).encode("utf-8", errors="surrogateescape"), kept
