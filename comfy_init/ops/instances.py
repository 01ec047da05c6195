"""`comfy-init instance create|list|show|delete|purge`: the instances of a data tree, from a host
shell or a one-off container. Every function returns a Result; nothing here prints.

Create and delete change the registry in one transaction each, re-checking every rule under its
lock, so racing commands never both win an id or a port. A delete never removes data: the instance
directory is renamed into meta/trash/<id>-<UTC> (a rename moves a link as a link: nothing is
followed, and shared/ is never touched), and the registry entry goes last.
"""

import errno
import os
import shlex
import stat
import sys
from concurrent.futures import ThreadPoolExecutor

from comfy_init.comfyui.endpoint import port_in_use, probe_host
from comfy_init.errors import ComfyInitError, DataError, UsageError, error_for
from comfy_init.ops.probe import probe_stats
from comfy_init.ops.template_apply import apply_template, check_applicable
from comfy_init.problems import Problem
from comfy_init.results import Result
from comfy_init.store import claims, conflicts
from comfy_init.store.clock import utc_now, utc_stamp
from comfy_init.store.files import unused_name
from comfy_init.store.migration_journal import refuse_while_migrating
from comfy_init.store.registry import Registry
from comfy_init.tree.apply import apply_steps
from comfy_init.tree.planner import plan_tree

VARIANTS = ("core", "complete", "cpu")
LISTEN = "0.0.0.0"


def _port_in_use(port):
    return port_in_use(LISTEN, port)


# -- create ---------------------------------------------------------------------------------------

def create_instance(layout, instance_id, *, variant="core", port=None, gpus=(), share_gpu=False,
                    template=None, adopt=False, template_nodes="skip"):
    try:
        result = _create(layout, instance_id, variant, port, list(gpus), share_gpu, template, adopt)
    except ComfyInitError as error:
        return Result.failure("instance create", error)
    if template is None:
        return result
    # The instance exists from here on: a template that fails to apply is reported, not undone.
    applied = apply_template(layout, template, instance_id, nodes=template_nodes, command="instance create")
    result.data["template"] = applied.data
    return Result("instance create", result.data, result.lines + applied.lines, applied.problems)


def _create(layout, instance_id, variant, port, gpus, share_gpu, template, adopt):
    problems = conflicts.id_problems(instance_id, creating=True)
    if variant == "cpu" and gpus:
        problems.append(Problem("usage", "a cpu instance gets no GPU", fix="leave out --gpu, or use --variant core"))
    if problems:
        raise UsageError(*problems)
    if template is not None:
        check_applicable(layout, template, instance_id)  # an unknown template: refused before anything is written
    instance = layout.instance(instance_id)
    # Planned before anything is written: whatever stands in the way of its tree is reported now.
    plan_tree(layout, instance, multi=True)
    registry = Registry(layout)
    with registry.transaction() as document:
        record = _new_record(document, instance, variant, port, gpus, share_gpu, template, adopt)
        document["instances"][instance_id] = record
    try:
        apply_steps(plan_tree(layout, instance, multi=True), layout.data)
    except ComfyInitError:
        _forget(registry, instance_id, record)  # undo: the registry never names a tree that is not there
        raise
    from comfy_init.ops.compose import write_compose

    compose_file = write_compose(layout)
    gpu_text = f", GPU {','.join(gpus)}" if gpus else ""
    lines = [f"created instance {instance_id!r} ({variant}, port {record['port']}{gpu_text}) in {instance.root}",
             f"start it: docker compose -f compose/docker-compose.yml -f {compose_file} up -d {instance_id}"]
    return Result("instance create", {"id": instance_id, "config": record, "path": instance.root,
                                      "compose_file": compose_file}, lines)


def _new_record(document, instance, variant, port, gpus, share_gpu, template, adopt):
    """The registry entry for a new instance, every rule checked on the document under the lock."""
    instance_id = instance.id
    if instance_id in document["instances"]:
        raise DataError(Problem("instance-exists", f"instance {instance_id!r} is already configured",
                                fix="choose another id, or `comfy-init instance show` it"))
    if os.path.lexists(instance.root) and not adopt:
        raise DataError(Problem(
            "instance-exists", "exists, but the registry does not configure it (a leftover, or made by a start "
            "that was never registered)", path=instance.root,
            fix=f"adopt it with `comfy-init instance create {instance_id} --adopt` (its files are kept), "
                "or move it away"))
    problems = conflicts.gpu_problems(document, instance_id, gpus, share_gpu)
    if port is None:
        port = conflicts.next_free_port(document, _port_in_use)
        if port is None:
            problems.append(Problem("no-free-port", f"every port from {conflicts.PORT_RANGE[0]} to "
                                    f"{conflicts.PORT_RANGE[1]} is configured or in use", fix="pass --port"))
    else:
        problems += conflicts.port_problems(document, instance_id, port, _port_in_use)
    if problems:
        raise error_for(*problems)
    record = {"created_at": utc_now(), "claim_generation": 0, "variant": variant, "port": port,
              "listen": LISTEN, "gpus": gpus, "share_gpu": share_gpu, "template": template}
    return record


def _forget(registry, instance_id, record):
    with registry.transaction() as document:
        if document["instances"].get(instance_id) == record:
            del document["instances"][instance_id]


# -- list and show ---------------------------------------------------------------------------------

RUNNING_HERE, STALE = claims.RUNNING_HERE, claims.STALE
STOPPED, ORPHANED = "stopped", "orphaned directory"


def instance_directories(layout):
    """The names of the directories under instances/ (the ones `list` and `status` show)."""
    try:
        # Dot names are never ids: a restore's staging directory (.restore-<id>-<token>) is not an instance.
        return {entry.name for entry in os.scandir(layout.instances)
                if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".")}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _state(layout, instance_id, entry, claim):
    if claim is None:
        return STOPPED if entry is not None else ORPHANED
    return claims.judge(layout, instance_id, claim)


def _row(layout, instance_id, entry, claim):
    entry = entry or {}
    return {
        "id": instance_id,
        "configured": bool(entry),
        "variant": entry.get("variant"),
        "port": (claim or {}).get("port", entry.get("port")),
        "gpus": entry.get("gpus", []),
        "state": _state(layout, instance_id, entry or None, claim),
        "holder": None if claim is None else {key: claim.get(key) for key in (
            "host", "container_id", "pid", "since", "renewed_at", "generation")},
        "claim_generation": entry.get("claim_generation"),
        "health": None, "comfyui_version": None, "devices": [],
    }


def collect_rows(layout, probe_timeout=1.0, probe_hosts=None):
    """One row per configured instance, claim, or directory under instances/; running instances
    probed in parallel (one timeout in all, however many do not answer)."""
    document = Registry(layout).load()
    ids = sorted(set(document["instances"]) | set(document["claims"]) | instance_directories(layout))
    rows = [_row(layout, i, document["instances"].get(i), document["claims"].get(i)) for i in ids]
    running = [row for row in rows if row["state"] == RUNNING_HERE]
    if running:
        with ThreadPoolExecutor(max_workers=min(32, len(running))) as pool:
            answers = pool.map(lambda row: probe_stats(_probe_url(row, document, probe_hosts), probe_timeout), running)
            for row, stats in zip(running, answers):
                _add_stats(row, stats)
    return document, rows


def _probe_url(row, document, probe_hosts):
    listen = document["claims"][row["id"]].get("listen", LISTEN)
    host = (probe_hosts or {}).get(row["id"]) or probe_host(listen)
    return f"http://{host}:{row['port']}/system_stats"


def _add_stats(row, stats):
    if stats is None:
        row["health"] = "no answer"
        return
    row["health"] = "ok"
    system = stats.get("system") if isinstance(stats.get("system"), dict) else {}
    row["comfyui_version"] = system.get("comfyui_version")
    row["devices"] = [d.get("name") for d in stats.get("devices", []) if isinstance(d, dict)]


def _table(rows):
    header = ("ID", "VARIANT", "PORT", "GPU", "STATE", "HEALTH", "VERSION", "HOLDER")
    body = [(r["id"], r["variant"] or "-", str(r["port"] or "-"), ",".join(r["gpus"]) or "-", r["state"],
             r["health"] or "-", r["comfyui_version"] or "-", _holder_text(r["holder"])) for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *body]]


def _holder_text(holder):
    if holder is None:
        return "-"
    container = f" container {holder['container_id']}" if holder.get("container_id") else ""
    return f"{holder['host']}{container} pid {holder['pid']} since {holder['since']}"


def list_instances(layout, probe_timeout=1.0):
    try:
        _, rows = collect_rows(layout, probe_timeout)
    except ComfyInitError as error:
        return Result.failure("instance list", error)
    lines = _table(rows) if rows else ["no instances (create one: comfy-init instance create core-1)"]
    return Result("instance list", {"instances": rows}, lines)


def show_instance(layout, instance_id, *, sizes=False, progress=None, app_dir=None):
    try:
        document, rows = collect_rows(layout)
        row = next((r for r in rows if r["id"] == instance_id), None)
        if row is None:
            raise error_for(Problem("unknown-instance", f"no instance {instance_id!r} in {layout.data}",
                                    fix="`comfy-init instance list` shows the instances"))
    except ComfyInitError as error:
        return Result.failure("instance show", error)
    instance = layout.instance(instance_id)
    row["paths"] = {name: getattr(instance, name) for name in (
        "root", "custom_nodes", "user", "temp", "output", "models", "input", "database")}
    row["command"] = _command(instance, row, app_dir)
    lines = _table([row]) + ["", "paths:"] + [f"  {k:<13} {v}" for k, v in row["paths"].items()]
    lines += ["", f"last claim generation: {row['claim_generation'] or 0}",
              "command: " + (" ".join(row["command"]) if row["command"] else "(no ComfyUI checkout found)")]
    if sizes:
        row["sizes"] = {name: tree_size(getattr(instance, name), progress) for name in ("output", "custom_nodes")}
        lines += [f"size of {name}: {size['bytes']} bytes in {size['files']} files"
                  for name, size in row["sizes"].items()]
    return Result("instance show", row, lines)


def _command(instance, row, app_dir):
    from comfy_init.comfyui.checkout import probe_checkout
    from comfy_init.comfyui.command import build_command

    try:
        checkout = probe_checkout(app_dir or os.environ.get("COMFY_APP_DIRECTORY", "/opt/comfyui"))
    except ComfyInitError:
        return None
    return build_command(python=sys.executable, checkout=checkout, instance=instance, listen=LISTEN,
                         port=row["port"] or 8188, device="cpu" if row["variant"] == "cpu" else "cuda",
                         cuda_device=None, arguments=[])


def tree_size(path, progress=None):
    """Files and bytes under `path`, never following a link; `progress(files, bytes)` now and then."""
    files = total = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif entry.is_file(follow_symlinks=False):
                files += 1
                total += entry.stat(follow_symlinks=False).st_size
                if progress is not None and files % 500 == 0:
                    progress(files, total)
    return {"files": files, "bytes": total}


# -- delete, trash, purge --------------------------------------------------------------------------

def delete_instance(layout, instance_id, *, keep_data=False, snapshot=True):
    try:
        return _delete(layout, instance_id, keep_data, snapshot)
    except ComfyInitError as error:
        return Result.failure("instance delete", error)


def _delete(layout, instance_id, keep_data, snapshot=True):
    if conflicts.id_problems(instance_id):
        raise UsageError(*conflicts.id_problems(instance_id))
    registry = Registry(layout)
    instance = layout.instance(instance_id)
    if instance_id not in registry.load()["instances"] and not os.path.lexists(instance.root):
        raise error_for(Problem("unknown-instance", f"no instance {instance_id!r} in {layout.data}",
                                fix="`comfy-init instance list` shows the instances"))
    refuse_while_migrating(layout, instance_id, f"deleting {instance_id!r}")
    lock = claims.lock_stopped(registry, instance_id, "stop its container first")
    try:
        taken = _snapshot_before_delete(layout, instance) if snapshot and not keep_data else None
        moved = None if keep_data else _move_to_trash(layout, instance)
        with registry.transaction() as document:
            entry = document["instances"].pop(instance_id, None) or {}
            document["claims"].pop(instance_id, None)
    finally:
        lock.release()
    from comfy_init.ops.compose import write_compose

    write_compose(layout)
    if moved is None:
        lines = [f"deleted instance {instance_id!r} from the registry; its files stay in {instance.root}"]
    else:
        lines = [f"deleted instance {instance_id!r}: its directory is now {moved}",
                 f"undo: mv {moved} {instance.root} && {_recreate_command(layout, instance_id, entry)}"]
    if taken is not None:
        lines.append(f"snapshot taken first: {taken} (restore it: comfy-init snapshot restore {taken} --yes)")
    return Result("instance delete", {"id": instance_id, "trash": moved, "kept": keep_data, "snapshot": taken}, lines)


def _snapshot_before_delete(layout, instance):
    """A `pre-delete` snapshot (without output/, which the trash keeps): taken under the instance's
    lock, so never live. None when there is no directory to snapshot."""
    from comfy_init.ops.snapshot.create import take_snapshot

    if not os.path.isdir(instance.root) or os.path.islink(instance.root):
        return None
    try:
        archive, _ = take_snapshot(layout, instance.id, kind="pre-delete", live=False)
    except OSError as exc:
        raise error_for(Problem("io-error", f"cannot take the snapshot before deleting: {exc.strerror or exc}",
                                path=exc.filename or instance.root,
                                fix="free some space, or delete with --no-snapshot (the trash keeps the directory)")) from None
    return archive


def _recreate_command(layout, instance_id, entry):
    """The `instance create --adopt` that registers the instance again as it was configured."""
    words = ["comfy-init", "instance", "create", instance_id, "--adopt"]
    if entry.get("variant"):
        words += ["--variant", entry["variant"]]
    if entry.get("port"):
        words += ["--port", str(entry["port"])]
    if entry.get("gpus"):
        words += ["--gpu", ",".join(entry["gpus"])]
    if entry.get("share_gpu"):
        words.append("--share-gpu")
    return " ".join(words + ["--data", layout.data])


def _move_to_trash(layout, instance):
    if not os.path.lexists(instance.root):
        return None
    os.makedirs(layout.trash, exist_ok=True)
    target = unused_name(os.path.join(layout.trash, f"{instance.id}-{utc_stamp()}"))
    try:
        os.rename(instance.root, target)  # the directory itself, or the link itself: nothing followed
    except OSError as error:
        raise error_for(Problem(
            "cannot-create", f"cannot move it to {target}: {error.strerror}", path=instance.root,
            fix="it is on another filesystem than meta/: move it away yourself, then delete with --keep-data")) from None
    return target


def trash_entries(layout):
    try:
        names = sorted(os.listdir(layout.trash))
    except FileNotFoundError:
        names = []
    entries = [{"name": name, "path": os.path.join(layout.trash, name)} for name in names]
    lines = [entry["path"] for entry in entries] or ["the trash is empty"]
    return Result("instance list --trash", {"trash": entries}, lines)


def purge_trash(layout):
    """Remove what `instance delete` moved to meta/trash: the only command that deletes files.
    Never below a mount point (a share mounted in a deleted instance went along with its folder:
    its files were never the data root's), never through a link; an entry it cannot remove is one
    problem, and the others are still removed."""
    try:
        refuse_while_migrating(layout, None, "emptying the trash (it holds what a migration parked)")
    except ComfyInitError as error:
        return Result.failure("instance purge", error)
    removed, problems = [], []
    for entry in trash_entries(layout).data["trash"]:
        found = _remove_on_one_filesystem(entry["path"])
        if found:
            problems += found
        else:
            removed.append(entry["path"])
    lines = [f"removed {path}" for path in removed] or (["the trash is empty"] if not problems else [])
    return Result("instance purge", {"removed": removed}, lines, problems)


def _remove_on_one_filesystem(root):
    """Remove `root` bottom-up without leaving its filesystem; the problems that kept parts."""
    try:
        top = os.lstat(root)
    except FileNotFoundError:
        return []
    problems, order, pending = [], [], [root]
    while pending:
        path = pending.pop()
        order.append(path)
        try:
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode):
                if info.st_dev != top.st_dev:
                    problems.append(Problem("invalid-data", "is a mount point inside the trash: another filesystem's "
                                            "files were never the data root's, and stay", path=path,
                                            fix=f"unmount it (umount {shlex.quote(path)}), then purge again"))
                    order.pop()
                    continue
                pending.extend(os.path.join(path, name) for name in os.listdir(path))
        except OSError as error:
            problems.append(_cannot_remove(path, error))
            order.pop()
    for path in reversed(order):
        try:
            os.rmdir(path) if stat.S_ISDIR(os.lstat(path).st_mode) else os.unlink(path)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not problems:
                problems.append(_cannot_remove(path, error))
    return problems


def _cannot_remove(path, error):
    return Problem("io-error", f"cannot be removed: {error.strerror or error}", path=path,
                   fix="run `comfy-init instance purge` as the owner of the trash's files (or root)")