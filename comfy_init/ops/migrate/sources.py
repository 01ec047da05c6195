"""Which single-instance layout a data tree (or `--from PATH`) holds, and where each folder goes.

Three layouts are known: compatibility mode's `DATA/comfy/{models,custom_nodes,...}`, the
per-folder mounts of common images at the data root (`DATA/{models,custom_nodes,...}`), and a
ComfyUI checkout that holds its own folders. Only real directories count: a folder that is already
a link (a finished migration leaves compatibility links) is not migrated again.
"""

import os
import stat

from comfy_init.errors import error_for
from comfy_init.layout import COMPAT_FOLDERS
from comfy_init.problems import Problem
from comfy_init.tree.paths import is_inside, overlaps

COMPAT, PER_FOLDER, CHECKOUT = "compat", "per-folder", "checkout"
# What ComfyUI wipes at every start: left where it is, never carried.
NOT_CARRIED = ("temp",)
# ComfyUI's model path files, reported with what to do (they name folders outside the tree).
MODEL_PATH_FILES = ("extra_model_paths.yaml", "extra_paths.yaml")


class Source:
    """A found layout: its `kind`, its `root`, and the folders to carry, name -> path."""

    def __init__(self, kind, root, folders, left):
        self.kind, self.root, self.folders, self.left = kind, root, folders, left

    def destination(self, layout, instance, name):
        """Where the folder `name` goes: models and input are shared, the rest the instance's own."""
        if name == "models":
            return layout.shared_models
        if name == "input":
            return layout.shared_input
        return instance.folder(name)

    def model_path_files(self):
        return [os.path.join(self.root, name) for name in MODEL_PATH_FILES
                if os.path.isfile(os.path.join(self.root, name))]

    def describe(self):
        return {"kind": self.kind, "root": self.root, "folders": sorted(self.folders), "left": self.left}


def _real_folders(root):
    """The layout's folders under `root` that are real directories (name -> path); links and the
    rest are left for the caller to report."""
    found = {}
    for name in COMPAT_FOLDERS:
        path = os.path.join(root, name)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode):
            found[name] = path
    return found


def _not_folders(root):
    """Entries named like the layout's folders that are links or not directories: left as they are."""
    found = []
    for name in COMPAT_FOLDERS:
        path = os.path.join(root, name)
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            found.append(path)
    return found


def find_source(layout, from_path=None):
    """The Source to migrate, or None when the tree holds no single-instance layout. UsageError
    when `--from` is unusable or the tree holds two layouts."""
    if from_path is not None:
        return _source_at(layout, os.path.realpath(from_path))
    candidates = []
    # Resolved: compatibility links are computed from where the folders really are.
    for kind, root in ((COMPAT, os.path.realpath(layout.compat_base)), (PER_FOLDER, layout.data)):
        folders = _real_folders(root)
        if folders and set(folders) - set(NOT_CARRIED):
            candidates.append(_make(kind, root, folders))
    if len(candidates) > 1:
        raise error_for(Problem(
            "usage", f"two single-instance layouts are here: {candidates[0].root} and {candidates[1].root}",
            path=layout.data, fix=f"migrate one at a time: --from {candidates[0].root}, then --from "
                                  f"{candidates[1].root} --to-instance <another id>"))
    return candidates[0] if candidates else None


def _source_at(layout, root):
    if not os.path.isdir(root):
        raise error_for(Problem("missing-path", "is not a directory", path=root,
                                fix="pass --from the folder that holds models/, custom_nodes/, user/ ..."))
    if root != os.path.realpath(layout.data):  # the data root is the per-folder layout's own place
        for zone in (layout.shared, layout.instances, layout.meta):
            if overlaps(root, os.path.realpath(zone)):
                raise error_for(Problem("usage", f"overlaps {zone}, which is already the multi-instance tree",
                                        path=root, fix="pass --from the old single-instance folder"))
    folders = _real_folders(root)
    if not set(folders) - set(NOT_CARRIED):
        raise error_for(Problem("missing-path", "holds none of models/, custom_nodes/, input/, output/, user/ "
                                "as real directories: nothing to migrate", path=root,
                                fix="pass --from the folder of the old layout"))
    if os.path.isfile(os.path.join(root, "main.py")):
        kind = CHECKOUT
    elif root == os.path.realpath(layout.compat_base):
        kind = COMPAT
    else:
        kind = PER_FOLDER
    return _make(kind, root, folders)


def _make(kind, root, folders):
    carried = {name: path for name, path in folders.items() if name not in NOT_CARRIED}
    left = sorted(os.path.join(root, name) for name in folders if name in NOT_CARRIED) + _not_folders(root)
    return Source(kind, root, carried, left)


def source_problems(layout, source):
    """What makes `source` unmovable: it lies inside a destination, or a destination inside it."""
    problems = []
    for name, path in source.folders.items():
        for zone in (layout.shared, layout.instances, layout.meta):
            if is_inside(os.path.realpath(zone), os.path.realpath(path)):
                problems.append(Problem("usage", f"holds {zone}: the multi-instance tree cannot be moved into "
                                        "itself", path=path, fix="move shared/, instances/ and meta/ out of it first"))
    return problems
