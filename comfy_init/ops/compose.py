"""`comfy-init compose`: a Compose file with one service per configured instance.

Used beside the shipped file, which it does not repeat:

    docker compose -f compose/docker-compose.yml -f <data>/meta/compose.instances.yml up -d core-3

Every service has the profile `instances` (so a plain `up` of the shipped profiles does not start
them) and the same data mount as the shipped services. Written as plain YAML by `to_yaml`: every
string and key double-quoted, so nothing is ever read as a number, a boolean or a tag.
"""

import json
import shlex

from comfy_init.results import Result
from comfy_init.store.files import write_atomic
from comfy_init.store.registry import Registry

IMAGE_VARIABLES = {"core": "COMFY_CORE_IMAGE", "complete": "COMFY_COMPLETE_IMAGE", "cpu": "COMFY_CPU_IMAGE"}
DATA_MOUNT = "${COMFY_DATA_PATH:-./data}:/data"
HEADER = ("# Written by `comfy-init compose` from meta/instance-registry.json: do not edit, run it again.\n"
          "# Use beside the shipped file:\n"
          "#   docker compose -f compose/docker-compose.yml -f {path} up -d <instance>\n")


def service_for(instance_id, entry):
    variant = entry.get("variant", "core")
    port = entry["port"]
    environment = {"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": instance_id, "COMFY_PORT": str(port),
                   "COMFY_STOP_TIMEOUT": "8", "PUID": "${PUID:-}", "PGID": "${PGID:-}", "CLI_ARGS": "${CLI_ARGS:-}"}
    if variant == "cpu":
        environment["COMFY_DEVICE"] = "cpu"
    if entry.get("cli_args"):
        # Recorded by `template apply`; `$$` is Compose's literal dollar sign.
        environment["CLI_ARGS"] = shlex.join(entry["cli_args"]).replace("$", "$$")
    service = {
        "image": f"${{{IMAGE_VARIABLES[variant]}:-comfy-init/{variant}:latest}}",
        "profiles": ["instances"],
        "environment": environment,
        "ports": [f"{port}:{port}"],
        "volumes": [DATA_MOUNT],
        "stop_signal": "SIGTERM",
        # Above COMFY_STOP_TIMEOUT, so Docker never kills comfy-init before it released the claim.
        "stop_grace_period": "15s",
        # Exit 75 (instance held elsewhere) is temporary: Docker's growing restart delay retries it.
        "restart": "unless-stopped",
    }
    if entry.get("gpus") and variant != "cpu":
        service["deploy"] = {"resources": {"reservations": {"devices": [
            {"driver": "nvidia", "device_ids": list(entry["gpus"]), "capabilities": ["gpu"]}]}}}
    return service


def compose_document(document):
    services = {instance_id: service_for(instance_id, entry)
                for instance_id, entry in sorted(document["instances"].items())
                if "variant" in entry and "port" in entry}
    return {"services": services}


def to_yaml(value, indent=0):
    """Block-style YAML for dicts, lists and strings (all strings JSON-quoted, which YAML reads as is)."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}\n"
        lines = []
        for key, item in value.items():
            key = json.dumps(key)  # quoted: an instance called `no`, `on` or `123` stays a string
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {to_yaml(item).strip()}\n")
        return "".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]\n"
        lines = []
        for item in value:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {body[indent + 2:]}")
            else:
                lines.append(f"{pad}- {to_yaml(item).strip()}\n")
        return "".join(lines)
    return json.dumps(value, ensure_ascii=False) + "\n"


def render(layout, document=None):
    document = Registry(layout).load() if document is None else document
    return HEADER.format(path=layout.compose_file) + to_yaml(compose_document(document))


def write_compose(layout, output=None, document=None):
    """Write the file (meta/compose.instances.yml unless `output`); return its path."""
    path = output or layout.compose_file
    write_atomic(path, render(layout, document).encode("utf-8"))
    return path


def compose(layout, output=None, to_stdout=False):
    document = Registry(layout).load()
    text = render(layout, document)
    services = sorted(compose_document(document)["services"])
    if to_stdout:
        return Result("compose", {"services": services, "path": None, "text": text}, [text.rstrip("\n")])
    path = write_compose(layout, output, document)
    return Result("compose", {"services": services, "path": path},
                  [f"wrote {path}: {len(services)} service(s){': ' + ', '.join(services) if services else ''}",
                   f"start one: docker compose -f compose/docker-compose.yml -f {path} up -d <instance>"])
