"""Looking at and recovering the registry from a host shell or a one-off container."""

import os

from comfy_init.errors import ComfyInitError
from comfy_init.results import Result
from comfy_init.store.registry import Registry, RegistryDamaged


def cli_recover_advice(mode):
    return f"run `comfy-init registry recover {mode}`"


def show_registry(layout):
    registry = Registry(layout)
    try:
        document = registry.load()
    except RegistryDamaged as damaged:
        return Result.failure("registry show", damaged.advise(cli_recover_advice))
    except ComfyInitError as error:
        return Result.failure("registry show", error)
    if document["revision"] == 0 and not os.path.lexists(registry.path):
        lines = [f"{registry.path}: no registry yet (no instance was created or started on {layout.data})"]
        return Result("registry show", {"path": registry.path, "document": document}, lines)
    lines = [f"{registry.path}: revision {document['revision']}, updated {document['updated_at']}",
             f"instances: {', '.join(sorted(document['instances'])) or 'none'}",
             f"claims:    {', '.join(sorted(document['claims'])) or 'none'}"]
    return Result("registry show", {"path": registry.path, "document": document}, lines)


def recover_registry(layout, mode):
    registry = Registry(layout)
    try:
        said = registry.recover(mode)
    except ComfyInitError as error:
        return Result.failure("registry recover", error)
    return Result("registry recover", {"path": registry.path, "mode": mode, "done": said}, [said])
