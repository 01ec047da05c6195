"""Making a migration's plan: walk the old tree once (the manifest), judge what would stop the
migration before anything moves, and lay out every step (plan.Planner)."""

import os

from comfy_init.errors import ComfyInitError
from comfy_init.ops.migrate import sources
from comfy_init.ops.migrate.manifest import DIGEST, OTHER, TYPE, UNREADABLE, Walk
from comfy_init.ops.migrate.plan import Plan, Planner, aimer, database_problems, relocator
from comfy_init.ops.migrate.report import space_problems
from comfy_init.problems import Problem
from comfy_init.store import conflicts
from comfy_init.store.clock import utc_stamp
from comfy_init.store.registry import Registry
from comfy_init.tree.paths import is_inside
from comfy_init.tree.planner import plan_tree


def make_plan(layout, source, instance_id, *, port=None, variant="core", progress=None, hash_small=True):
    """The Plan and the old tree's manifest (path -> entry)."""
    walk = Walk(progress, hash_small=hash_small)
    for path in source.folders.values():
        walk.tree(path)
    plan = Plan(source, instance_id, layout.trash_entry(f"migration-{instance_id}-{utc_stamp()}"), os.urandom(6).hex())
    plan.problems += sources.source_problems(layout, source) + database_problems(source)
    plan.problems += [Problem("invalid-data", "is a mount point inside the old tree: a rename cannot carry it",
                              path=path, fix="unmount it (mount it at its new place after the migration), "
                                             "then migrate again") for path in walk.foreign]
    plan.problems += [Problem("cannot-look", f"cannot be read ({why})", path=path,
                              fix="make it readable for this user, or run migrate as its owner")
                      for path, why in walk.failures]
    document = Registry(layout).load()
    registered = instance_id in document["instances"]
    plan.problems += _target_problems(layout, document, instance_id, port)
    plan.add("prepare", id=instance_id, register=not registered, port=port, variant=variant)
    planner = Planner(layout, plan, walk)
    instance = layout.instance(instance_id)
    for name in sorted(source.folders):
        planner.folder(name, source.folders[name], source.destination(layout, instance, name))
    relocate = relocator(plan.steps)
    planner.relinks(relocate, aimer(plan.to_data(), relocate))
    planner.hard_links(relocate)
    if source.kind == sources.COMPAT:
        plan.add("owner", path=layout.compat_instance(source.root).owner_file, id=instance_id)
    plan.notes += _notes(source)
    _uncopyable(plan, walk.entries)
    plan.problems += space_problems(plan, layout)
    return plan, walk.entries


def _target_problems(layout, document, instance_id, port):
    """What `instance create` would refuse, and whatever stands in the way of the instance's tree,
    refused before the journal starts."""
    problems = []
    if instance_id not in document["instances"]:
        problems += conflicts.id_problems(instance_id, creating=True)
        if port is not None:
            problems += conflicts.port_problems(document, instance_id, port, _port_in_use)
    try:
        plan_tree(layout, layout.instance(instance_id), multi=True)
    except ComfyInitError as error:
        problems += error.problems
    return problems


def _port_in_use(port):
    from comfy_init.comfyui.endpoint import port_in_use

    return port_in_use("0.0.0.0", port)


def _link_text(path):
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _uncopyable(plan, entries):
    """Files this user cannot read: a rename moves them (said in the plan), a copy cannot (refused),
    nor can it carry FIFOs, sockets and devices."""
    copied = [step["src"] for step in plan.steps if step["step"] == "copy"]
    if not copied:  # renames carry everything: only unreadable files are worth a line
        plan.unreadable += [path for path, entry in entries.items() if entry[DIGEST] == UNREADABLE]
        return
    for path, entry in entries.items():
        in_copy = any(is_inside(path, root) for root in copied)
        if entry[TYPE] == OTHER and in_copy:
            plan.problems.append(Problem("invalid-data", "is a FIFO, socket or device file, which cannot be copied "
                                         "to another filesystem", path=path,
                                         fix="remove it (its program recreates it), then migrate again"))
        if entry[DIGEST] != UNREADABLE:
            continue
        if in_copy:
            plan.problems.append(Problem("cannot-look", "cannot be read, and must be copied to another filesystem",
                                         path=path, fix="make it readable for this user, or migrate as its owner"))
        else:
            plan.unreadable.append(path)


def _notes(source):
    notes = []
    for path in source.left:
        if os.path.basename(path) in sources.NOT_CARRIED:
            notes.append(f"{path} stays where it is (ComfyUI empties temp at every start; it is not carried)")
        elif os.path.islink(path):
            notes.append(f"{path} is a link to {_link_text(path)!r} and stays as it is: what it points to is not "
                         "moved (mount or move that folder to its new place yourself)")
        else:
            notes.append(f"{path} is not a folder and stays as it is")
    for path in source.model_path_files():
        notes.append(f"{path} names model folders of its own: keep them by moving their files into shared/models, "
                     "or pass the file to ComfyUI with CLI_ARGS='--extra-model-paths-config <path>'")
    return notes
