"""Each instance's tree as `run` would judge it (tree.planner: real directories where links belong,
wrong, broken or escaping links, folders that resolve into another instance or shared/, owner
marks), links that are missing, and ComfyUI databases that two processes would share.

The one safe fix: making a missing link (or one standing in an empty directory, or an absolute
one) with the planner's own step, re-planned under the instance's lock right before it is made.
"""

import os
import stat

from comfy_init.errors import BusyError, ComfyInitError
from comfy_init.layout import DATABASE_NAME
from comfy_init.problems import Problem
from comfy_init.store import locks
from comfy_init.tree.apply import apply_steps
from comfy_init.tree.paths import is_inside
from comfy_init.tree.planner import Planner, plan_tree
from comfy_init.tree.steps import DESCRIPTIONS, LINK, RELINK, REPLACE_EMPTY_DIR

_LINK_STEPS = {
    LINK: "is missing: a link to {target} belongs here",
    REPLACE_EMPTY_DIR: "is an empty directory where a link to {target} belongs",
    RELINK: "leads to {target}, but not as the relative link that keeps the tree working at any mount point",
}
FIX_BY_CHECK = "`comfy-init check --fix` makes the link (so does the instance's next start)"


def find_tree(ctx):
    """The planner's problems for every instance that has a directory (and for the old layout,
    when <data>/comfy exists), each reported once, and the links the planner would make."""
    layout, found = ctx.layout, []
    covered = _writability_paths(ctx)
    for instance_id in ctx.instance_ids:
        if instance_id not in ctx.entries:
            continue  # no directory: the registry checker reports it
        instance = layout.instance(instance_id)
        found += [p for p in _planned(layout, instance, True) if not (p.kind == "not-writable" and p.path in covered)]
        found += _link_findings(layout, instance)
    if os.path.lexists(layout.compat_base):
        found += _planned(layout, layout.compat_instance(), False)
    reported = {p.path for p in found if p.kind == "shared-folder"}
    found += [p for p in _shared_between(ctx) if not any(is_inside(p.path, r) for r in reported)]
    return _once(found)


def _shared_between(ctx):
    """Folders of two instances that resolve to one directory (or one inside the other) anywhere,
    also outside instances/, where the planner, judging one instance at a time, cannot see it.
    Each pair is reported once, on the folder that lies inside (or on the later of two equal)."""
    owners, folders = {}, []
    for instance_id in ctx.instance_ids:
        if instance_id in ctx.entries:
            instance = ctx.layout.instance(instance_id)
            for path in [instance.root, *instance.own_folders()]:
                folders.append((instance_id, path, os.path.realpath(path)))
                owners.setdefault(folders[-1][2], folders[-1])
    problems = []
    for instance_id, path, real in folders:
        other = _owner_above(owners, real, instance_id)
        if other is not None:
            problems.append(Problem(
                "shared-folder", f"resolves to {real}, which overlaps {other[1]} of instance {other[0]!r}: two "
                "writers would share one folder (and ComfyUI wipes temp at every start)", path=path,
                fix="replace the link with a real directory of this instance"))
    return problems


def _owner_above(owners, real, instance_id):
    """The folder of another instance at `real` or at one of its parents."""
    candidate = real
    while True:
        owner = owners.get(candidate)
        if owner is not None and owner[0] != instance_id:
            return owner
        parent = os.path.dirname(candidate)
        if parent == candidate:
            return None
        candidate = parent


def _planned(layout, instance, multi):
    try:
        plan_tree(layout, instance, multi=multi)
    except ComfyInitError as error:
        return error.problems
    return []


def _writability_paths(ctx):
    """What the writability checker judges for the instance's own uid: the planner's judgement
    there (for the uid running check) would only repeat or contradict it."""
    paths = {ctx.layout.shared_input}
    for instance_id in ctx.instance_ids:
        instance = ctx.layout.instance(instance_id)
        paths.update([instance.root, *instance.own_folders()])
    return paths


def _link_steps(layout, instance):
    planner = Planner(layout.data)
    planner.link(instance.models, layout.shared_models)
    planner.link(instance.input, layout.shared_input)
    return [step for step in planner.steps if step.kind in _LINK_STEPS]


def _link_findings(layout, instance):
    if not os.path.isdir(instance.root):
        return []
    return [Problem("link-missing", _LINK_STEPS[step.kind].format(target=_target(layout, step.path)),
                    path=step.path, fix=FIX_BY_CHECK) for step in _link_steps(layout, instance)]


def _target(layout, path):
    return layout.shared_models if os.path.basename(path) == "models" else layout.shared_input


def _once(problems):
    seen, unique = set(), []
    for problem in problems:
        key = (problem.kind, problem.path, problem.message)
        if key not in seen:
            seen.add(key)
            unique.append(problem)
    return unique


def fix_link(ctx, problem):
    """Make the link `problem.path` under the instance's lock (a running instance holds it: left
    alone). The planner looks again first; the link is made only where nothing (or an empty
    directory, or a link to the same place) stands."""
    layout = ctx.layout
    instance = layout.instance(os.path.basename(os.path.dirname(problem.path)))
    if problem.path not in (instance.models, instance.input):
        return None
    os.makedirs(layout.locks, exist_ok=True)
    lock = locks.try_lock(layout.lock_path(instance.id))
    if lock is None:
        raise BusyError(Problem("instance-held", f"instance {instance.id!r} is running (its lock is held)",
                                path=problem.path, fix="its running start made its tree; check again once it stops"))
    try:
        steps = [step for step in _link_steps(layout, instance) if step.path == problem.path]
        if not steps:
            return None
        apply_steps(steps, layout.data)
    finally:
        lock.release()
    return f"{DESCRIPTIONS[steps[0].kind]}: {steps[0].path} -> {steps[0].target}"


def find_databases(ctx):
    """Two instances whose user/comfyui.db is one file (a link or a hard link): the second ComfyUI
    process on it exits. And a database in the ComfyUI checkout: old releases use it for every
    instance, newer ones copy it into the first instance started without --database-url."""
    layout, by_file, problems = ctx.layout, {}, []
    for instance_id in ctx.instance_ids:
        path = layout.instance(instance_id).database
        try:
            info = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            by_file.setdefault((info.st_dev, info.st_ino), []).append(path)
    for paths in by_file.values():
        for path in paths[1:]:
            problems.append(Problem(
                "shared-database", f"is the same file as {paths[0]}: two ComfyUI processes on one SQLite "
                "database lock each other out (the second exits)", path=path,
                fix=f"stop both instances, then give this one its own copy: `cp -pL {path} {path}.copy && "
                    f"mv {path}.copy {path}`"))
    if ctx.app_dir:
        path = os.path.join(ctx.app_dir, "user", DATABASE_NAME)
        if os.path.isfile(path):
            problems.append(Problem(
                "checkout-database", "is a ComfyUI database in the ComfyUI checkout: a ComfyUI started without "
                "--database-url uses (or copies) it, so every instance would share one database", path=path,
                fix=f"comfy-init gives each instance its own database; move this one aside: `mv {path} "
                    f"{path}.moved-aside`"))
    return problems

