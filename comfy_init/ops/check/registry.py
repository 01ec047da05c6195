"""Registry against tree: entries without directories, directories without entries, and the same
port or GPU configured twice (the rules are store.conflicts', the ones `instance create` enforces).
The one safe fix: registering an orphaned directory, as its first start would have."""

import os
import stat

from comfy_init.errors import DataError, error_for
from comfy_init.ops.check.context import is_instance_id
from comfy_init.problems import Problem
from comfy_init.store import conflicts
from comfy_init.store.clock import utc_now
from comfy_init.store.files import read_regular

FIX_BY_CHECK = "`comfy-init check --fix` does it"


def find_entries(ctx):
    """The registry's own problems, then what the registry and instances/ disagree on."""
    problems = list(ctx.registry_problems)
    layout = ctx.layout
    for name, info in sorted(ctx.entries.items()):
        path = os.path.join(layout.instances, name)
        if not is_instance_id(name):
            problems.append(Problem(
                "invalid-data", "is not an instance directory: its name is not an instance id (a DNS label, "
                "not a reserved name), and only instance directories belong in instances/", path=path,
                fix=f"move it out of instances/, for example `mv {path} {layout.trash_entry(name)}`"))
        elif ctx.document is not None and name not in ctx.registered and _is_directory(path, info):
            problems.append(Problem(
                "unregistered-directory", "is an instance directory the registry does not configure", path=path,
                fix=f"{FIX_BY_CHECK} (it registers {name!r} as its first start would), or configure a port and GPU "
                    f"with `comfy-init instance create {name} --adopt --data {layout.data}`; if it is not wanted, "
                    f"move it away: `mv {path} {layout.trash_entry(name)}`"))
    for instance_id in sorted(ctx.registered - set(ctx.entries)):
        root = layout.instance(instance_id).root
        problems.append(Problem(
            "missing-instance-directory", f"is missing, but the registry configures instance {instance_id!r}",
            path=root,
            fix=f"start the instance (its start creates the tree), restore its latest snapshot with `comfy-init "
                f"snapshot restore {instance_id} --yes --data {layout.data}`, or forget it with "
                f"`comfy-init instance delete {instance_id} --keep-data --data {layout.data}`"))
    return problems


def _is_directory(path, info):
    """A real directory, or a link to one (the tree checker judges where the link leads)."""
    return stat.S_ISDIR(info.st_mode) or (stat.S_ISLNK(info.st_mode) and os.path.isdir(path))


def find_ports(ctx):
    """Each pair of instances configured with one port or one (unshared) GPU, reported once: on
    the later id, against the earlier ones."""
    if ctx.document is None:
        return []
    problems, earlier = [], {"instances": {}, "claims": {}}
    for instance_id in sorted(ctx.document["instances"]):
        entry = ctx.document["instances"][instance_id]
        if isinstance(entry.get("port"), int):
            for found in conflicts.port_problems(earlier, instance_id, entry["port"], lambda _port: False):
                problems.append(_conflict(ctx, instance_id, entry, found, "port"))
        for found in conflicts.gpu_problems(earlier, instance_id, entry.get("gpus", []), entry.get("share_gpu", False)):
            problems.append(_conflict(ctx, instance_id, entry, found, "gpu"))
        earlier["instances"][instance_id] = entry
    return problems


def _conflict(ctx, instance_id, entry, found, what):
    from comfy_init.ops.instances import _recreate_command

    layout = ctx.layout
    forget = f"comfy-init instance delete {instance_id} --keep-data --data {layout.data}"
    if what == "port":
        free = conflicts.next_free_port(ctx.document, lambda _port: False)
        again = _recreate_command(layout, instance_id, dict(entry, port=free))
        fix = f"give {instance_id!r} another port (its files are kept): `{forget} && {again}`"
    else:
        again = _recreate_command(layout, instance_id, dict(entry, gpus=[], share_gpu=False))
        fix = (f"give {instance_id!r} a GPU of its own (its files are kept): `{forget} && {again} --gpu <GPU id>`, "
               "or recreate both with --share-gpu if they may share it")
    return Problem(found.kind, f"instance {instance_id!r}: {found.message}", path=layout.registry, fix=fix)


def register_orphan(ctx, problem):
    """Register the directory `problem.path` under its name, as `run` registers an instance at its
    first start (no port, no GPU: nothing is invented). Re-checked under the registry's lock."""
    layout = ctx.layout
    instance_id = os.path.basename(problem.path)
    instance = layout.instance(instance_id)
    if instance.root != problem.path or os.path.islink(instance.root) or not os.path.isdir(instance.root):
        return None  # gone, or a link (the tree checker judges where it leads): not registered
    mark = read_regular(instance.owner_file)
    owner = None if mark is None else mark.decode("utf-8", "replace").strip()
    if owner not in (None, instance_id):
        raise DataError(Problem("shared-folder", f"is marked for instance {owner!r}: not registered as {instance_id!r}",
                                path=instance.root, fix="see the shared-folder finding about it"))
    try:
        with ctx.registry.transaction() as document:
            if instance_id in document["instances"]:
                return None
            document["instances"][instance_id] = {"created_at": utc_now(), "claim_generation": 0}
    except OSError as error:
        raise error_for(Problem("io-error", f"cannot register it: {error.strerror}", path=instance.root)) from None
    return f"registered instance {instance_id!r} (its directory {instance.root} was not in the registry)"
