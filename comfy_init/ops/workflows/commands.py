"""`comfy-init workflows publish|list|import`: each returns a Result and prints nothing.

Copies, never links: current ComfyUI refuses user files that resolve outside the user folder, so a
linked workflow folder (or file) would not load. Every file is read with read_regular (no link,
FIFO or device), validated as a ComfyUI workflow before anything is written, and written
atomically (temporary file, fsync, rename). A command is all or nothing: every name is checked
(exists, valid, not in the way) before the first file is written.

A file already there is never replaced unless `force`; then the replaced file is kept beside it as
`<name>.json.replaced-<UTC>` (shared/workflows) or `<name>.json.before-import-<UTC>` (an
instance), never overwriting an earlier backup: the backup is a hard link made under the first
free name (link() never replaces; where links are refused, a copy created with O_EXCL), and only
then is the file replaced. A file with the same bytes is left as it is.

Publish writes under shared/workflows/.lock, import under each target instance's workflows lock
(meta/locks/<id>.workflows.lock): two at once cannot both decide from the same look.
The models each workflow names are looked up in shared/models; missing ones are reported (the
copy is still made: a model can be downloaded later).
"""

import contextlib
import os

from comfy_init.errors import ComfyInitError, UsageError, error_for
from comfy_init.layout import workflow_name
from comfy_init.ops.models.resolve import instance_ids as known_instances
from comfy_init.ops.workflows import library
from comfy_init.ops.workflows.content import missing_models, needed_models, parse_workflow
from comfy_init.problems import Problem
from comfy_init.results import Result
from comfy_init.store import conflicts, locks
from comfy_init.store.clock import utc_now, utc_stamp
from comfy_init.store.files import io_failure, keep_copy_as_new_name, publish_new, read_regular, write_atomic

LOCK_TIMEOUT = 10.0


def _guarded(command, function, *args):
    try:
        return function(*args)
    except ComfyInitError as error:
        return Result.failure(command, error)
    except OSError as exc:
        return Result.failure(command, io_failure(exc.filename or "", "failed", exc))


def _names(names):
    checked, problems = [], []
    for name in names:
        try:
            checked.append(workflow_name(name))
        except ValueError:
            problems.append(Problem("usage", f"{name!r} is not a workflow name",
                                    fix="give the file's name under the workflow folder, e.g. portrait or sdxl/portrait"))
    if problems or not checked:
        raise UsageError(*(problems or [Problem("usage", "no workflow named", fix="give one NAME or more")]))
    return list(dict.fromkeys(checked))


def _instance(layout, instance_id):
    problems = conflicts.id_problems(instance_id)
    if problems:
        raise UsageError(*problems)
    instance = layout.instance(instance_id)
    if instance_id not in known_instances(layout):
        raise error_for(Problem("unknown-instance", f"no instance {instance_id!r} in {layout.instances}",
                                fix="`comfy-init instance list` shows them"))
    return instance


def _read_workflows(paths_by_name, where):
    """{name: (bytes, document)} of every named file; all problems at once."""
    found, problems = {}, []
    for name, path in paths_by_name.items():
        try:
            data = read_regular(path)
            if data is None:
                problems.append(Problem("unknown-workflow", f"no workflow {name!r} in {where}", path=path,
                                        fix="`comfy-init workflows list` shows the shared ones; names are file names without .json"))
                continue
            found[name] = (data, parse_workflow(data, path))
        except ComfyInitError as error:
            problems += error.problems
    if problems:
        raise error_for(*problems)
    return found


def _missing_lines(layout, name, document):
    missing = missing_models(layout, needed_models(document))
    lines = [f"  needs {model}{f' ({folder})' if folder else ''}: not in shared/models" for model, folder in missing]
    return [f"{name}: {len(missing)} model(s) missing", *lines] if missing else [], [m for m, _ in missing]


def _write(target, data, force, backup_suffix):
    """Write `data` at `target`: 'same' (nothing to do), 'new', or the backup kept; None = refused."""
    current = read_regular(target) if os.path.lexists(target) else None
    if current == data:
        return "same"
    if os.path.lexists(target) and not force:
        return None
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if not os.path.lexists(target):
        publish_new(target, data)  # never replaces: a file that appeared meanwhile is refused (FileExistsError)
        return "new"
    # The backup first, by link() under a free name (never onto an earlier backup), then the replace.
    backup = keep_copy_as_new_name(target, f"{target}.{backup_suffix}-{utc_stamp()}", current)
    write_atomic(target, data)
    return backup


def _in_the_way(targets, data_by_target, force):
    """workflow-exists problems for what stands at a target and is not a regular file (even with
    force), or is a file that differs from what would be written (without force)."""
    problems = []
    for target in targets:
        if not os.path.lexists(target):
            continue
        if os.path.islink(target) or not os.path.isfile(target):
            problems.append(Problem("workflow-exists", "is not a regular file", path=target,
                                    fix="move it aside; comfy-init never writes through a link"))
        elif not force and read_regular(target) != data_by_target[target]:
            problems.append(Problem("workflow-exists", "a different workflow of that name is already there",
                                    path=target, fix="pass --force to replace it (the old file is kept as a backup), "
                                                     "or choose another name"))
    return problems


def _folder_problems(targets):
    """One problem for each folder a target needs that cannot be made or written: the nearest
    existing path above a target is not a directory, or this user cannot write it. Only looks."""
    problems, seen = [], set()
    for target in targets:
        directory = os.path.dirname(target)
        while not os.path.lexists(directory) and os.path.dirname(directory) != directory:
            directory = os.path.dirname(directory)
        if directory in seen:
            continue
        seen.add(directory)
        if not os.path.isdir(directory):
            problems.append(Problem(
                "not-a-directory", "is not a directory, and the workflow folder "
                + ("must be one" if directory == os.path.dirname(target) else f"{os.path.dirname(target)} goes in it"),
                path=directory,
                fix=f"move it aside (e.g. to {os.path.basename(directory)}.moved-aside) and run the command again; "
                    "nothing was written"))
        elif not os.access(directory, os.W_OK | os.X_OK):
            problems.append(Problem(
                "not-writable", f"cannot be written by uid {os.geteuid()}, and the workflow "
                f"{'folder goes' if directory != os.path.dirname(target) else 'file goes'} there",
                path=directory,
                fix="run the command as the folder's owner (or root), or make it writable; nothing was written"))
    return problems


# -- publish --------------------------------------------------------------------------------------

def publish_workflows(layout, instance_id, names, *, force=False):
    return _guarded("workflows publish", _publish, layout, instance_id, names, force)


def _publish(layout, instance_id, names, force):
    names = _names(names)
    instance = _instance(layout, instance_id)
    found = _read_workflows({n: instance.workflow(n) for n in names}, f"{instance.workflows}/")
    targets = {n: layout.shared_workflow(n) for n in names}
    os.makedirs(layout.shared_workflows, exist_ok=True)
    lines, rows = [], []
    with locks.hold(layout.shared_workflows_lock, timeout=LOCK_TIMEOUT):
        refused = (_folder_problems(targets.values())
                   or _in_the_way(targets.values(), {targets[n]: found[n][0] for n in names}, force))
        if refused:
            raise error_for(*refused)
        index = library.read_index(layout)
        for name in names:
            data, document = found[name]
            outcome = _write(targets[name], data, force, "replaced")
            if outcome is None:
                raise error_for(*_in_the_way([targets[name]], {targets[name]: data}, False))
            index[name] = {"published_at": utc_now(), "published_by": library.publisher(),
                           "instance": instance_id, "bytes": len(data)}
            more, missing = _missing_lines(layout, name, document)
            rows.append({"name": name, "path": targets[name], "outcome": _outcome(outcome), "missing_models": missing,
                         **({"backup": outcome} if _outcome(outcome) == "replaced" else {})})
            lines += [_line("published", name, targets[name], outcome), *more]
        library.write_index(layout, index)
    return Result("workflows publish", {"instance": instance_id, "workflows": rows}, lines)


def _outcome(outcome):
    return outcome if outcome in ("same", "new") else "replaced"


def _line(verb, name, target, outcome):
    if outcome == "same":
        return f"{name}: unchanged ({target} already holds it)"
    if outcome == "new":
        return f"{verb} {name} -> {target}"
    return f"{verb} {name} -> {target} (the file it replaced is kept as {outcome})"


# -- list -----------------------------------------------------------------------------------------

def list_workflows(layout):
    return _guarded("workflows list", _list, layout)


def _list(layout):
    index, rows = library.read_index(layout), []
    for name in library.names_in(layout.shared_workflows):
        path = layout.shared_workflow(name)
        record = index.get(name, {})
        try:
            document = parse_workflow(read_regular(path) or b"", path)
            missing, valid = [m for m, _ in missing_models(layout, needed_models(document))], True
        except ComfyInitError:
            missing, valid = [], False
        rows.append({"name": name, "path": path, "valid": valid, "published_at": record.get("published_at"),
                     "published_by": record.get("published_by"), "instance": record.get("instance"),
                     "missing_models": missing})
    header = ("NAME", "PUBLISHED", "BY", "FROM", "MISSING MODELS")
    body = [(r["name"] + ("" if r["valid"] else " (not a workflow)"), r["published_at"] or "-",
             r["published_by"] or "-", r["instance"] or "-", ", ".join(r["missing_models"]) or "-") for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *body]]
    return Result("workflows list", {"workflows": rows}, lines if rows else ["no shared workflows"])


# -- import ---------------------------------------------------------------------------------------

def import_workflows(layout, names, *, to=None, all_instances=False, force=False):
    return _guarded("workflows import", _import, layout, names, to, all_instances, force)


def _targets_of(layout, to, all_instances):
    if bool(to) == bool(all_instances):
        raise UsageError(Problem("usage", "say where to: --to ID or --all", fix="e.g. --to core-1"))
    if to:
        return [_instance(layout, to)]
    instances = [layout.instance(i) for i in known_instances(layout)]
    if not instances:
        raise error_for(Problem("unknown-instance", f"no instances in {layout.instances}",
                                fix="create one with `comfy-init instance create ID`"))
    return instances


def _import(layout, names, to, all_instances, force):
    names = _names(names)
    instances = _targets_of(layout, to, all_instances)
    found = _read_workflows({n: layout.shared_workflow(n) for n in names}, f"{layout.shared_workflows}/")
    plan = [(instance, name, instance.workflow(name)) for instance in instances for name in names]
    _refuse_in_the_way(plan, found, force)  # before any lock is taken: a bad tree waits for nothing
    with contextlib.ExitStack() as held:
        os.makedirs(layout.locks, exist_ok=True)
        for instance in sorted(instances, key=lambda i: i.id):  # one order: two imports never deadlock
            held.enter_context(locks.hold(layout.workflows_lock(instance.id), timeout=LOCK_TIMEOUT))
        _refuse_in_the_way(plan, found, force)  # looked at again under the locks: what is written follows
        return _import_planned(names, instances, found, force, layout)


def _refuse_in_the_way(plan, found, force):
    """All or nothing: every target's folder can be made and written, and no target is in the way."""
    targets = [t for _, _, t in plan]
    refused = _folder_problems(targets) or _in_the_way(targets, {t: found[n][0] for _, n, t in plan}, force)
    if refused:
        raise error_for(*refused)


def _import_planned(names, instances, found, force, layout):
    lines, rows = [], []
    for name in names:
        more, missing = _missing_lines(layout, name, found[name][1])
        lines += more
        for instance in instances:
            target = instance.workflow(name)
            outcome = _write_owned(instance, target, found[name][0], force)
            rows.append({"name": name, "instance": instance.id, "path": target, "outcome": _outcome(outcome),
                         "missing_models": missing, **({"backup": outcome} if _outcome(outcome) == "replaced" else {})})
            lines.append(_line(f"imported into {instance.id}:", name, target, outcome))
    return Result("workflows import", {"workflows": rows}, lines)


def _write_owned(instance, target, data, force):
    """_write into an instance, then give new folders and files the owner of its user folder (an
    import run as root must not leave files ComfyUI, running as PUID, cannot save over)."""
    made = _missing_parents(target, instance.user)
    try:
        outcome = _write(target, data, force, "before-import")
    except FileExistsError as exc:  # a file appeared at the target, or where one of its folders belongs
        raise error_for(*(_in_the_way([target], {target: data}, False) or [Problem(
            "cannot-create", "cannot be created: something appeared in its way while importing",
            path=exc.filename or target, fix="look at what stands there, move it aside, and import again")])) from None
    if outcome is None:
        raise error_for(*_in_the_way([target], {target: data}, False))
    if os.geteuid() == 0 and outcome == "new":
        owner = os.stat(instance.user)
        for path in made + [target]:
            os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)
    return outcome


def _missing_parents(target, top):
    made, directory = [], os.path.dirname(target)
    while directory.startswith(top + os.sep) and not os.path.lexists(directory):
        made.append(directory)
        directory = os.path.dirname(directory)
    return made
