"""`comfy-init snapshot create|list|show|verify|restore|prune|delete`: every function returns a
Result and prints nothing; `progress(files, bytes)` is called as files go by (the CLI draws it on
a terminal). The parts live in comfy_init.ops.snapshot (archive, collect, create, scan, restore,
catalog).

A snapshot of a running instance is allowed (the manifest says `live`; its database is copied
with SQLite's backup API). A restore refuses a running instance (75) and holds the instance's
lock throughout, so a start waits for it and is then refused or finds the new tree.
"""

import os
import time

from comfy_init.errors import ComfyInitError, UsageError
from comfy_init.ops.snapshot import catalog
from comfy_init.ops.snapshot.create import take_snapshot
from comfy_init.ops.units import human_size
from comfy_init.problems import Problem
from comfy_init.results import Result
from comfy_init.store import claims, conflicts, locks
from comfy_init.store.files import io_failure
from comfy_init.store.migration_journal import refuse_while_migrating
from comfy_init.store.registry import Registry


def _guarded(command, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except ComfyInitError as error:
        return Result.failure(command, error)
    except OSError as exc:
        return Result.failure(command, io_failure(exc.filename or "", "failed", exc))


def _check_id(instance_id):
    problems = conflicts.id_problems(instance_id)
    if problems:
        raise UsageError(*problems)


# -- create ---------------------------------------------------------------------------------------

def create_snapshot(layout, instance_id, *, include_output=False, note=None, progress=None):
    return _guarded("snapshot create", _create, layout, instance_id, include_output, note, progress)


def _create(layout, instance_id, include_output, note, progress):
    started = time.monotonic()
    archive, manifest = take_snapshot(layout, instance_id, note=note, include_output=include_output, progress=progress)
    seconds = time.monotonic() - started
    totals, size = manifest["totals"], os.path.getsize(archive)
    data = {"instance": instance_id, "name": manifest["name"], "archive": archive,
            "manifest": layout.snapshot_manifest(instance_id, manifest["name"]), "live": manifest["live"],
            "files": totals["files"], "bytes": totals["bytes"], "archive_bytes": size, "seconds": round(seconds, 3),
            "git_nodes": len(manifest["git_nodes"]), "skipped": manifest["skipped"]}
    lines = [f"snapshot {manifest['name']} of {instance_id!r}{' (taken live)' if manifest['live'] else ''}: "
             f"{totals['files']} files, {human_size(totals['bytes'])} -> {human_size(size)} in {seconds:.1f} s",
             f"archive: {archive}"]
    lines += [f"skipped (not a file, directory or link): {path}" for path in manifest["skipped"]]
    return Result("snapshot create", data, lines)


# -- list, show, verify, prune, delete ---------------------------------------------------------------

def list_snapshots(layout, instance_id=None):
    return _guarded("snapshot list", _list, layout, instance_id)


def _list(layout, instance_id):
    ids = [instance_id] if instance_id else catalog.instance_ids(layout)
    rows = [catalog.summary(snapshot) for i in ids for snapshot in catalog.snapshots_of(layout, i)]
    header = ("INSTANCE", "NAME", "CREATED", "KIND", "FILES", "SIZE", "ARCHIVE", "NOTE")
    body = [(r["instance"], r["name"], r["created_at"] or "-", (r["kind"] or "-") + (" live" if r["live"] else ""),
             str(r["files"] if r["files"] is not None else "-"), human_size(r["bytes"]) if r["bytes"] is not None else "-",
             human_size(r["archive_bytes"] or 0), r["note"] or "") for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *body]]
    return Result("snapshot list", {"snapshots": rows}, lines if rows else ["no snapshots"])


def show_snapshot(layout, reference):
    return _guarded("snapshot show", _show, layout, reference)


def _show(layout, reference):
    snapshot = catalog.find(layout, reference, latest_ok=True)
    manifest = snapshot.beside_manifest()
    if manifest is None:  # no copy beside it: read the one at the archive's end (checks it all)
        from comfy_init.ops.snapshot.scan import scan

        manifest = scan(snapshot.archive)
    totals = manifest.get("totals") or {}
    lines = [f"snapshot {snapshot.name} of {manifest.get('instance')!r}: {snapshot.archive}"]
    lines += [f"  {key:<19} {manifest.get(key)}" for key in (
        "created_at", "kind", "note", "live", "include_output", "comfy_init_version", "comfyui_version", "variant")]
    lines.append(f"  {'files':<19} {totals.get('files')} ({human_size(totals.get('bytes') or 0)}), "
                 f"{len(manifest.get('entries') or [])} entries")
    lines += [f"  git node {n['path']}: {n['remote']} @ {n['commit']}{' (dirty)' if n.get('dirty') else ''}"
              for n in manifest.get("git_nodes") or []]
    freeze = manifest.get("pip_freeze")
    lines.append(f"  {'pip freeze':<19} " + (f"{len(freeze['packages'])} packages ({freeze['python']})"
                                              if freeze else "not reachable when taken"))
    venv = manifest.get("venv")
    lines.append(f"  {'venv':<19} " + (f"{len(venv['freeze'])} own packages (restore reinstalls them)"
                                        if venv else "none"))
    return Result("snapshot show", {"archive": snapshot.archive, "manifest": manifest}, lines)


def verify_snapshot(layout, reference, progress=None):
    return _guarded("snapshot verify", _verify, layout, reference, progress)


def _verify(layout, reference, progress):
    from comfy_init.ops.snapshot.scan import counts, scan

    snapshot = catalog.find(layout, reference, latest_ok=True)
    started = time.monotonic()
    manifest = scan(snapshot.archive, progress=progress)
    total = counts(manifest)
    lines = [f"ok: {snapshot.archive}: {total['files']} files ({human_size(total['bytes'])}), "
             f"{total['entries']} entries, every hash matches its manifest"]
    return Result("snapshot verify", {"archive": snapshot.archive, "name": snapshot.name, **total,
                                      "seconds": round(time.monotonic() - started, 3)}, lines)


def prune_snapshots(layout, instance_id, keep):
    return _guarded("snapshot prune", _prune, layout, instance_id, keep)


def _prune(layout, instance_id, keep):
    _check_id(instance_id)
    if keep < 0:
        raise UsageError(Problem("usage", f"--keep {keep}: must be 0 or more"))
    removed = []
    if os.path.isdir(layout.snapshot_dir(instance_id)):
        with locks.hold(layout.snapshot_lock(instance_id), timeout=60):
            existing = catalog.snapshots_of(layout, instance_id)
            for snapshot in existing[: max(0, len(existing) - keep)]:
                catalog.remove(snapshot)
                removed.append(snapshot.archive)
    lines = [f"removed {path}" for path in removed] or [f"nothing to prune: {instance_id!r} has at most {keep}"]
    return Result("snapshot prune", {"instance": instance_id, "keep": keep, "removed": removed}, lines)


def delete_snapshot(layout, reference):
    return _guarded("snapshot delete", _delete, layout, reference)


def _delete(layout, reference):
    snapshot = catalog.find(layout, reference)
    lock_dir = os.path.dirname(snapshot.archive)
    with locks.hold(os.path.join(lock_dir, os.path.basename(layout.snapshot_lock(snapshot.instance_id))), timeout=60):
        catalog.remove(snapshot)
    return Result("snapshot delete", {"archive": snapshot.archive, "name": snapshot.name},
                  [f"deleted snapshot {snapshot.name}: {snapshot.archive}"])


# -- restore ----------------------------------------------------------------------------------------

def restore_snapshot(layout, reference, *, to=None, nodes_as_refs=False, progress=None):
    return _guarded("snapshot restore", _restore, layout, reference, to, nodes_as_refs, progress)


def _target_of(snapshot, to):
    target = to or (snapshot.beside_manifest() or {}).get("instance") or snapshot.instance_id
    problems = conflicts.id_problems(target)
    if problems:
        raise UsageError(*problems, Problem("usage", "cannot tell which instance to restore into",
                                            fix="pass --to ID"))
    return target


def _hold_instance(layout, instance_id):
    refuse_while_migrating(layout, instance_id, f"restoring into {instance_id!r}")
    return claims.lock_stopped(Registry(layout), instance_id,
                               "stop its container first; a restore never replaces a running instance")


def _owner(instance):
    """Who owns restored files: PUID/PGID when root, as `run` gives them; else the replaced
    directory's owner when root; else whoever runs this (None: nothing chowned)."""
    if os.geteuid() != 0:
        return None
    puid = os.environ.get("PUID", "").strip()
    if puid.isdigit():
        pgid = os.environ.get("PGID", "").strip()
        return int(puid), int(pgid) if pgid.isdigit() else int(puid)
    try:
        info = os.lstat(instance.root)
    except FileNotFoundError:
        return None
    return info.st_uid, info.st_gid


def _restore(layout, reference, to, nodes_as_refs, progress):
    from comfy_init.ops.snapshot import restore

    snapshot = catalog.find(layout, reference, latest_ok=True)
    target = _target_of(snapshot, to)
    instance = layout.instance(target)
    started = time.monotonic()
    lock = _hold_instance(layout, target)
    try:
        leftovers = restore.clear_leftovers(layout, target)
        staging, manifest, cloned = restore.extract(layout, instance, snapshot, owner=_owner(instance),
                                                    nodes_as_refs=nodes_as_refs, progress=progress)
        try:
            pre = None
            if os.path.lexists(instance.root):
                pre, _ = take_snapshot(layout, target, kind="pre-restore", live=False,
                                       note=f"before restoring {snapshot.name}",
                                       include_output=bool(manifest.get("include_output")))
            replaced = restore.swap_in(staging, instance.root)
        except BaseException:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
            raise
        trashed = restore.to_trash(layout, target, replaced, "replaced") if replaced else None
    finally:
        lock.release()
    registered = _register(layout, target, manifest)
    return _restored(snapshot, target, instance, manifest, pre, trashed, leftovers, cloned, registered,
                     time.monotonic() - started)


def _restored(snapshot, target, instance, manifest, pre, trashed, leftovers, cloned, registered, seconds):
    from comfy_init.ops.snapshot.scan import counts

    total = counts(manifest)
    lines = [f"restored {snapshot.name} into {instance.root}: {total['files']} files ({human_size(total['bytes'])}) "
             f"in {seconds:.1f} s"]
    if pre:
        name = os.path.basename(pre).split(".")[0]
        lines.append(f"the replaced tree is snapshot {target}/{name} (undo: comfy-init snapshot restore "
                     f"{target}/{name} --yes); its directory is in {trashed}")
    lines += [f"a killed restore's directory moved to {path}" for path in leftovers]
    lines += [f"cloned {path} from its remote" for path in cloned]
    if registered:
        lines.append(f"registered instance {target!r} (port {registered['port']})")
    return Result("snapshot restore", {
        "archive": snapshot.archive, "name": snapshot.name, "instance": target, "path": instance.root,
        "pre_restore": pre, "replaced_moved_to": trashed, "leftovers": leftovers, "cloned": cloned,
        "registered": registered, "seconds": round(seconds, 3), **total}, lines)


def _register(layout, target, manifest):
    """Configure `target` from the snapshot's configuration when the registry does not know it
    (a clone with --to, or an instance deleted since): its port and GPUs when free, else the next
    free port and no GPU."""
    from comfy_init.ops.compose import write_compose
    from comfy_init.ops.instances import _new_record

    config = manifest.get("config") or {}
    instance = layout.instance(target)
    with Registry(layout).transaction() as document:
        if target in document["instances"]:
            return None
        args = (config.get("variant") or "core", config.get("template"))
        try:
            record = _new_record(document, instance, args[0], config.get("port"), list(config.get("gpus") or []),
                                 bool(config.get("share_gpu")), args[1], True)
        except ComfyInitError:
            try:
                record = _new_record(document, instance, args[0], None, [], False, args[1], True)
            except ComfyInitError:
                return None  # restored all the same; `instance create ID --adopt` registers it later
        document["instances"][target] = record
    write_compose(layout)
    return record
