"""Naming and conflict rules for instances, in one place: used by `instance create`, by `run`
(which warns when a container differs from its registered configuration) and by later checks.

Pure functions of a registry document and plain values; the caller supplies "is this port in use
on this host" as a function, so nothing here opens a socket.
"""

from comfy_init.layout import INSTANCE_ID_PATTERN, RESERVED_IDS
from comfy_init.problems import Problem

# The ports `instance create` picks from when none is given: after the shipped compose file's
# 8188-8192, so a created instance never takes the port of a shipped service.
PORT_RANGE = (8193, 8292)
# The services of the shipped compose/docker-compose.yml (checked by its tests). An instance of one
# of these names would merge into the shipped service in `docker compose -f ... -f generated`.
SHIPPED_SERVICES = ("core", "complete", "cpu", "core-1", "core-2", "complete-1", "cpu-1", "cpu-2", "comfy-init")


def id_problems(instance_id, creating=False):
    """Why `instance_id` cannot be used (creating: also not a shipped compose service's name)."""
    if not INSTANCE_ID_PATTERN.match(instance_id or ""):
        return [Problem("usage", f"{instance_id!r} is not a valid instance id",
                        fix="use a DNS label: 1-63 lower-case letters, digits or '-', starting and ending "
                            "with a letter or digit, e.g. core-3")]
    if instance_id in RESERVED_IDS:
        return [Problem("usage", f"{instance_id!r} is a reserved name ({', '.join(RESERVED_IDS)})",
                        fix="choose another id, e.g. core-3")]
    if creating and instance_id in SHIPPED_SERVICES:
        return [Problem("usage", f"{instance_id!r} is a service of the shipped compose file, which starts and "
                        "configures it (its profile)", fix="choose another id, e.g. core-3")]
    return []


def ports_taken(document, except_id=None):
    """port -> instance id, for every configured or claimed port but `except_id`'s."""
    taken = {}
    for source in (document["instances"], document["claims"]):
        for instance_id, entry in source.items():
            if instance_id != except_id and isinstance(entry.get("port"), int):
                taken.setdefault(entry["port"], instance_id)
    return taken


def port_problems(document, instance_id, port, in_use):
    """The port is configured (or claimed) by another instance: 65; in use on this host: 75."""
    owner = ports_taken(document, instance_id).get(port)
    if owner is not None:
        return [Problem("port-conflict", f"port {port} is configured for instance {owner!r}",
                        fix="choose another --port, or leave it out to get the next free one")]
    if in_use(port):
        return [Problem("port-in-use", f"port {port} is in use on this host",
                        fix="choose another --port, or stop what listens there")]
    return []


def next_free_port(document, in_use, port_range=PORT_RANGE):
    taken = ports_taken(document)
    for port in range(port_range[0], port_range[1] + 1):
        if port not in taken and not in_use(port):
            return port
    return None


def gpu_problems(document, instance_id, gpus, share):
    """GPUs given to another instance, unless both sides share them."""
    problems = []
    for other_id, entry in document["instances"].items():
        if other_id == instance_id:
            continue
        both_share = share and entry.get("share_gpu", False)
        for gpu in gpus:
            if gpu in entry.get("gpus", []) and not both_share:
                problems.append(Problem(
                    "gpu-conflict", f"GPU {gpu} is given to instance {other_id!r}",
                    fix="choose another --gpu, or pass --share-gpu (and give that instance share_gpu too)"))
    return problems


def differences(document, instance_id, *, port, gpus):
    """How a starting container differs from its registered configuration, one line each."""
    entry = document["instances"].get(instance_id)
    if entry is None or "variant" not in entry:
        return []  # not created with `instance create`: nothing registered to differ from
    found = []
    if "port" in entry and entry["port"] != port:
        found.append(f"COMFY_PORT={port} but the registry configures port {entry['port']} for {instance_id!r}")
    registered = entry.get("gpus", [])
    if gpus is not None and registered and [str(g) for g in gpus] != registered:
        found.append(f"COMFY_CUDA_DEVICE={','.join(map(str, gpus))} but the registry configures GPU "
                     f"{','.join(registered)} for {instance_id!r}")
    return found
