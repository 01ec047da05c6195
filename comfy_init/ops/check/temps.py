"""Temporaries comfy-init's writers leave when they are killed, and only those.

Every name below is one comfy-init makes, in the one folder it makes it in, while holding one lock:

    .<file>.tmp-<pid>-<hex>          store.files (write_atomic, publish_new) beside the file it replaces
                                     (meta/claims/ too: claim files, store.claimfiles)
    .<snapshot>.partial / .db        a snapshot being written, in meta/backup-snapshots/<id>/
    .<template>.building-<hex>/      `template create`, in meta/shared-configs/
    .<node>.cloning-<hex>/           `template apply` cloning a node, in an instance's custom_nodes/
    .restore-<id>-<hex>[.replaced]/  `snapshot restore`'s staging, in instances/
    <models|input>.comfy-init-link-<pid>   a link being re-pointed, in an instance's directory
    .<model>.dedupe-<pid>-<hex>      `models verify --fix` / `check --fix` replacing a copy of a shared
                                     model by a hard link, beside the copy (in an instance's model
                                     folders: custom_nodes/*/models/..., extra_model_paths folders)

One counts as left behind only when it is older than `stale_after` AND the lock its writer holds
is free (a free flock proves its holder gone). A temporary whose writer takes no lock (the compose
file's) is reported with the command that removes it, and never removed here. The fix takes the
lock, looks again, removes a file or a link, and moves a folder into meta/trash: a restore's
staging folder can hold the tree it replaced, so no folder is ever deleted.
"""

import os
import re
import shlex
import stat

from comfy_init.errors import BusyError, ComfyInitError, error_for
from comfy_init.layout import OWNER_NAME, REGISTRY_NAME, TEMPLATE_CAPTURED
from comfy_init.problems import Problem
from comfy_init.store import claimfiles, locks
from comfy_init.store.clock import utc_stamp
from comfy_init.store.files import unused_name

_TMP = r"\.(?P<target>.+)\.tmp-\d+-[0-9a-f]+"
_PATTERNS = {
    "tmp": re.compile(rf"\A{_TMP}\Z"),
    "partial": re.compile(r"\A\..+\.(partial|db)\Z"),
    "building": re.compile(r"\A\.[A-Za-z0-9][A-Za-z0-9._-]{0,63}\.building-[0-9a-f]+\Z"),
    "cloning": re.compile(r"\A\..+\.cloning-[0-9a-f]+\Z"),
    "restore": re.compile(r"\A\.restore-(?P<id>[a-z0-9-]+)-[0-9a-f]+(\.replaced)?\Z"),
    "relink": re.compile(r"\A(models|input)\.comfy-init-link-\d+\Z"),
    "dedupe": re.compile(r"\A\..+\.dedupe-\d+-[0-9a-f]+\Z"),
}
_WHAT = {"tmp": "file written atomically", "partial": "snapshot archive being written",
         "building": "template folder being built", "cloning": "custom node being cloned",
         "restore": "restore staging folder", "relink": "link being re-pointed",
         "dedupe": "hard link of a shared model being put in place of a copy"}


NOT_OURS = object()


class Temp:
    __slots__ = ("path", "kind", "lock", "info")

    def __init__(self, path, kind, lock, info):
        self.path = path
        self.kind = kind
        self.lock = lock  # the flock its writer holds, or None when its writer takes none
        self.info = info


def _places(ctx):
    """(folder, {pattern kind: lock path, None (its writer takes no lock), or a function of the
    match giving one of those or NOT_OURS})."""
    layout = ctx.layout
    registry_lock = ctx.registry.lock_path
    meta_targets = {REGISTRY_NAME: registry_lock, REGISTRY_NAME + ".bak": registry_lock,
                    REGISTRY_NAME + ".xlock": registry_lock}
    places = [(layout.meta, {"tmp": lambda match: meta_targets.get(match["target"])}),
              (claimfiles.directory(layout), {"tmp": lambda match: _claim_file_lock(layout, match["target"])}),
              (layout.shared_configs, {"building": layout.templates_lock, "tmp": layout.templates_lock}),
              (layout.instances, {"restore": lambda match: layout.lock_path(match["id"])})]
    places += [(layout.snapshot_dir(i), {"partial": layout.snapshot_lock(i), "tmp": layout.snapshot_lock(i)})
               for i in _names(layout.snapshots)]
    places += [(layout.template_dir(name), {"tmp": layout.templates_lock}) for name in _names(layout.shared_configs)]
    for instance_id in ctx.instance_ids:
        instance, lock = layout.instance(instance_id), layout.lock_path(instance_id)
        places.append((instance.root, {"tmp": _only_for({OWNER_NAME}, lock), "relink": lock}))
        places.append((instance.custom_nodes, {"cloning": lock}))
        targets = {}
        for relative in TEMPLATE_CAPTURED:
            path = instance.template_target(relative)
            targets.setdefault(os.path.dirname(path), set()).add(os.path.basename(path))
        places += [(folder, {"tmp": _only_for(names, lock)}) for folder, names in sorted(targets.items())]
    places += [(folder, {"dedupe": layout.model_dedupe_lock}) for folder in _model_folders(ctx)]
    return places


def _claim_file_lock(layout, target):
    """A claim file `<id>.<generation>.claim` is rewritten by its holder, who holds the instance's lock."""
    instance_id, dot, rest = target.partition(".")
    return layout.lock_path(instance_id) if dot and rest.endswith(".claim") else NOT_OURS


def _model_folders(ctx):
    """Every folder below the instances' model folders (where a copy of a shared model can be
    replaced), links not followed."""
    from comfy_init.ops.models.resolve import configured, resolve

    entries, folders, seen = ctx.document["instances"] if ctx.document else configured(ctx.layout), [], set()
    for instance_id in ctx.instance_ids:
        try:
            roots = resolve(ctx.layout, instance_id, entries.get(instance_id), ctx.app_dir).copy_roots
        except (OSError, ComfyInitError):
            continue  # the model-duplicates check says why
        for root in roots:
            for folder, _dirs, _files in os.walk(root):
                if folder not in seen:
                    seen.add(folder)
                    folders.append(folder)
    return folders


def _only_for(names, lock):
    """In a folder others write too: only the temporaries of the files comfy-init writes there
    (`NOT_OURS` for any other name)."""
    return lambda match: lock if match["target"] in names else NOT_OURS


def _names(directory):
    try:
        return sorted(entry.name for entry in os.scandir(directory)
                      if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False))
    except OSError:
        return []


def candidates(ctx):
    """Every temporary of comfy-init's making in the tree, stale or not (looked for once per
    context). Folders reached through a link are not looked in: what a link leads to (perhaps
    outside the data root) is not ours."""
    if "temps" not in ctx.cache:
        found, real_root = [], os.path.realpath(ctx.layout.data)
        for folder, kinds in _places(ctx):
            if os.path.realpath(folder) == os.path.join(real_root, os.path.relpath(folder, ctx.layout.data)):
                found += _matches(folder, kinds)
        ctx.cache["temps"] = found
    return ctx.cache["temps"]


def _matches(folder, kinds):
    try:
        with os.scandir(folder) as entries:
            named = [(entry, kind, match, lock) for entry in entries for kind, lock in kinds.items()
                     if (match := _PATTERNS[kind].match(entry.name)) is not None]
    except OSError:
        return []  # missing or unreadable: nothing of ours to judge there
    found, seen = [], set()
    for entry, kind, match, lock in named:
        lock = lock(match) if callable(lock) else lock
        if lock is NOT_OURS or entry.path in seen:
            continue
        try:
            found.append(Temp(entry.path, kind, lock, entry.stat(follow_symlinks=False)))
        except OSError:
            continue  # gone while looking
        seen.add(entry.path)
    return found


def _left_behind(ctx, temp):
    if not ctx.is_stale(temp.info):
        return False
    try:
        return temp.lock is None or not locks.held_elsewhere(temp.lock)
    except ComfyInitError:  # a lock file that is not a regular file, or unreadable: not ours to judge
        return False


def find_temps(ctx):
    problems = []
    for temp in candidates(ctx):
        if not _left_behind(ctx, temp):
            continue
        age = int((ctx.now - temp.info.st_mtime) // 60)
        folder = stat.S_ISDIR(temp.info.st_mode)
        if temp.lock is None:
            why = "its writer takes no lock"
            fix = f"nothing reads it; remove it when no comfy-init command runs: `rm -- {shlex.quote(temp.path)}`"
        elif (home := _orphaned_tree(ctx, temp)) is not None:
            problems.append(Problem("stray-temporary", f"is the tree of instance {os.path.basename(home)!r} that a "
                                    f"killed restore left {age} minutes ago, and {home} is missing", path=temp.path,
                                    fix=f"`comfy-init check --fix` puts it back at {home}"))
            continue
        else:
            why = f"its writer's lock {temp.lock} is free"
            fix = ("`comfy-init check --fix` moves it to meta/trash" if folder else "`comfy-init check --fix` removes it")
        problems.append(Problem("stray-temporary", f"is a {_WHAT[temp.kind]} that a killed comfy-init left "
                                f"behind {age} minutes ago ({why})", path=temp.path, fix=fix))
    return problems


def fix_temp(ctx, problem):
    """Remove (a folder: move to meta/trash) the temporary `problem.path`, holding its writer's
    lock and after looking again. None when it is gone, younger, or its writer takes no lock."""
    temp = next((t for t in candidates(ctx) if t.path == problem.path), None)
    if temp is None or temp.lock is None or not ctx.is_stale(temp.info):
        return None
    if os.path.dirname(temp.lock) == ctx.layout.locks:
        os.makedirs(ctx.layout.locks, exist_ok=True)
    lock = locks.try_lock(temp.lock)
    if lock is None:
        raise BusyError(Problem("lock-timeout", "its writer's lock is held again: it is in use", path=temp.path,
                                fix="leave it; check again later"))
    try:
        again = os.lstat(temp.path)
        if _identity(again) != _identity(temp.info) or not ctx.is_stale(again):
            return None  # replaced (an inode number can be reused; a ctime cannot be set back), or young
        home = _orphaned_tree(ctx, temp)
        if home is not None:  # under that instance's lock (the restore's own): nothing else moves it
            os.rename(temp.path, home)
            return f"put the tree of instance {os.path.basename(home)!r} back: {temp.path} -> {home}"
        if stat.S_ISDIR(again.st_mode):
            return _to_trash(ctx.layout, temp.path)
        os.unlink(temp.path)  # a file or a link: never what a link points to
        return f"removed {temp.path}"
    except FileNotFoundError:
        return None
    except OSError as error:
        raise error_for(Problem("io-error", f"cannot remove it: {error.strerror}", path=temp.path)) from None
    finally:
        lock.release()


def _orphaned_tree(ctx, temp):
    """A restore killed between its two renames (where the kernel has no RENAME_EXCHANGE) leaves
    the instance's live tree as `.restore-<id>-<hex>.replaced` and no instances/<id>: that is the
    instance's directory to put back, never a temporary. Its home path, else None."""
    if temp.kind != "restore" or not temp.path.endswith(".replaced"):
        return None
    match = _PATTERNS["restore"].match(os.path.basename(temp.path))
    home = ctx.layout.instance(match["id"]).root
    return None if os.path.lexists(home) else home


def _identity(info):
    return info.st_dev, info.st_ino, info.st_ctime_ns


def _to_trash(layout, path):
    os.makedirs(layout.trash, exist_ok=True)
    target = unused_name(layout.trash_entry(f"{os.path.basename(path).lstrip('.')}-left-behind-{utc_stamp()}"))
    os.rename(path, target)
    return f"moved {path} to {target}"
