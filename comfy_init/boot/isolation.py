"""Path settings that would break isolation, refused before anything is written (exit 78).

The rule: an instance directory is this instance's alone: not the data root or above it, not
inside or above shared/ or meta/, not inside or above another instance's directory, and apart
from the ComfyUI checkout; the shared directory holds no instance and no meta. Settings are
compared as written AND as they resolve now (a link in a setting's path counts), with string work
and realpath only: no directory is listed.
"""

import os

from comfy_init.comfyui.command import PATH_FLAGS, flag_values
from comfy_init.problems import Problem
from comfy_init.tree.paths import ALL_INSTANCES, instance_owner, is_inside, overlaps


def _forms(path):
    """The path as written (normalised) and as it resolves now."""
    return {os.path.normpath(path), os.path.realpath(path)}


def _any(test, a, b):
    return any(test(x, y) for x in _forms(a) for y in _forms(b))


def _problem(message, fix):
    return Problem("settings-overlap", message, fix=fix)


def setting_overlap_problems(layout, instance, app_dir, *, multi, environ):
    problems = []
    if multi:
        problems += _instance_problems(layout, instance, environ)
        problems += _shared_problems(layout, environ)
    name = "COMFY_INSTANCE_DIRECTORY" if multi else "COMFY_BASE_DIRECTORY"
    if _any(overlaps, instance.root, app_dir):
        problems.append(_problem(
            f"{name}={instance.root!r} and COMFY_APP_DIRECTORY={app_dir!r} overlap: ComfyUI's checkout "
            "must not hold, or be inside, an instance's data",
            f"keep the data under COMFY_DATA_DIRECTORY and the checkout apart, e.g. {name}="
            f"{layout.instance(instance.id).root if multi else layout.compat_base}"))
    return problems


def _at_or_above(path, root):
    return _any(lambda a, b: is_inside(b, a), path, root)


def _overlapping(path, named):
    """The (name, path) pairs of `named` whose trees overlap `path`'s."""
    return [(name, other) for name, other in named if _any(overlaps, path, other)]


def _instance_owner(layout, path):
    """instance_owner for `path` and instances/ as written and as resolved (the first that says)."""
    for form in _forms(path):
        for instances in _forms(layout.instances):
            owner = instance_owner(form, instances)
            if owner is not None:
                return owner
    return None


def _placement_problems(setting, path, layout, root_says, named, consequence, fix):
    """`path` (the value of `setting`) at or above the data root, or overlapping one of `named`."""
    found = []
    if _at_or_above(path, layout.data):
        found.append(_problem(f"{setting} is the data root{root_says}", fix))
    for name, other in _overlapping(path, named):
        found.append(_problem(f"{setting} overlaps {name} ({other}): {consequence}", fix))
    return found


def _instance_problems(layout, instance, environ):
    if environ.get("COMFY_INSTANCE_DIRECTORY", "").strip() == "":
        return []  # the default is the instance's own by construction; links on it are the tree's to judge
    setting = f"COMFY_INSTANCE_DIRECTORY={instance.root!r}"
    fix = f"leave COMFY_INSTANCE_DIRECTORY unset (it defaults to {layout.instance(instance.id).root})"
    found = _placement_problems(
        setting, instance.root, layout, f" COMFY_DATA_DIRECTORY={layout.data!r} or above it",
        _shared_zones(layout) + (("the meta directory", layout.meta),),
        "an instance's temp is wiped at every start and its folders are written by ComfyUI", fix)
    owner = _instance_owner(layout, instance.root)
    if owner is ALL_INSTANCES:
        found.append(_problem(f"{setting} holds every instance's directory ({layout.instances})", fix))
    elif owner is not None and owner != instance.id:
        found.append(_problem(
            f"{setting} is inside the directory of instance {owner!r} ({layout.instance(owner).root}), "
            f"not of {instance.id!r}: two ComfyUIs would share its folders", fix))
    return found


def _shared_zones(layout):
    """COMFY_SHARED_DIRECTORY, and DATA/shared too when it is moved elsewhere: other containers on
    the tree that keep the default still share what is there."""
    zones = (("COMFY_SHARED_DIRECTORY", layout.shared),)
    default = os.path.join(layout.data, "shared")
    if os.path.normpath(layout.shared) != os.path.normpath(default):
        zones += (("the default shared directory", default),)
    return zones


def _shared_problems(layout, environ):
    if environ.get("COMFY_SHARED_DIRECTORY", "").strip() == "":
        return []
    setting = f"COMFY_SHARED_DIRECTORY={layout.shared!r}"
    fix = f"leave COMFY_SHARED_DIRECTORY unset (it defaults to {os.path.join(layout.data, 'shared')})"
    return _placement_problems(
        setting, layout.shared, layout, " or above it: it would hold the instances and meta/",
        (("the instances directory", layout.instances), ("the meta directory", layout.meta)),
        "shared models would sit in an instance's folders, where ComfyUI deletes temp at every start", fix)


def argument_path_problems(layout, instance, arguments, source, app_dir):
    """ComfyUI path flags in CLI_ARGS (or after `--`) whose value reaches shared/, meta/, the data
    root, or another instance's directory. A value inside this instance, or outside the data tree,
    is the user's business. Relative values are taken as ComfyUI takes them: from its working
    directory, the checkout."""
    problems = []
    for flag, value, given in flag_values(arguments, PATH_FLAGS):
        path = _flag_path(flag, value, app_dir)
        if path is None:
            continue
        why = _foreign_place(layout, instance, path)
        if why:
            problems.append(_problem(
                f"{source}: {given} {value!r} {why}: ComfyUI would read and write there for instance "
                f"{instance.id!r}", "remove it: comfy-init gives every instance its own folders"))
    return problems


def _flag_path(flag, value, app_dir):
    if not value:
        return None
    if flag == "--database-url":
        if not value.startswith("sqlite:///") or value.startswith("sqlite:///:memory:"):
            return None  # another database server, or no file at all
        value = value[len("sqlite:///"):].split("?", 1)[0]
    return os.path.normpath(os.path.join(app_dir, value))


def _foreign_place(layout, instance, path):
    """Why `path` is not this instance's to use, or None."""
    if _any(is_inside, path, instance.root):
        return None
    if _at_or_above(path, layout.data):
        return "is the data root or above it"
    for name, _other in _overlapping(path, _shared_zones(layout) + (("meta/", layout.meta),)):
        return f"reaches into {name}"
    owner = _instance_owner(layout, path)
    if owner is ALL_INSTANCES:
        return "holds every instance's directory"
    if owner is not None and owner != instance.id:
        return f"is inside the directory of instance {owner!r}"
    return None
