"""The migration's first step: the target instance exists, registered, with its tree (empty own
folders the moves then replace, the models and input links into shared/), and its undo."""

import os

from comfy_init.errors import error_for
from comfy_init.layout import OWN_FOLDERS
from comfy_init.store.files import read_regular
from comfy_init.store.registry import Registry
from comfy_init.tree.apply import apply_steps
from comfy_init.tree.planner import plan_tree


def do_prepare(step, layout):
    from comfy_init.ops.instances import create_instance

    instance = layout.instance(step["id"])
    if step["register"] and step["id"] not in Registry(layout).load()["instances"]:
        created = create_instance(layout, step["id"], variant=step["variant"], port=step["port"], adopt=True)
        if created.exit_code:
            raise error_for(*created.problems)
    else:
        apply_steps(plan_tree(layout, instance, multi=True), layout.data)


def undo_prepare(step, layout):
    """Unregister an instance the migration registered, and remove the skeleton its tree made:
    empty folders, its two links and its owner file. Anything else in it stays, and so does it."""
    if not step["register"]:
        return
    from comfy_init.ops.compose import write_compose

    with Registry(layout).transaction() as document:
        document["instances"].pop(step["id"], None)
    instance = layout.instance(step["id"])
    for name in OWN_FOLDERS:
        _remove_empty(instance.folder(name))
    for link in (instance.models, instance.input):
        if os.path.islink(link):
            os.unlink(link)
    found = read_regular(instance.owner_file) if os.path.isfile(instance.owner_file) else None
    if found is not None and found.decode("utf-8", "replace").strip() == step["id"]:
        os.unlink(instance.owner_file)
    _remove_empty(instance.root)
    write_compose(layout)


def _remove_empty(path):
    try:
        os.rmdir(path)
    except OSError:
        pass  # not empty, or not there: kept as it is
