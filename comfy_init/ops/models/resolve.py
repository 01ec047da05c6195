"""Where each instance finds its model folders, and which of its folders can hold copies of models.

An instance resolves its models to shared/models when `instances/<id>/models` is the link the tree
makes (any link whose target resolves to shared/models) and every model folder of its own
`extra_model_paths.yaml` resolves into shared/models too.

The instance folders searched for copies of shared models (documented in docs/models.md):
- `models/` when it is a real directory (planted in place of the link);
- `custom_nodes/*/models/` (nodes that keep model files of their own);
- model folders of its extra_model_paths.yaml that resolve inside the instance directory.
Nothing else of an instance is walked: output/, user/ and temp/ can be large and hold no models.
Folders outside both the instance and shared/ are reported, not walked.
"""

import os
from collections import namedtuple

from comfy_init.layout import INSTANCE_ID_PATTERN
from comfy_init.problems import Problem
from comfy_init.store.files import read_regular
from comfy_init.errors import ComfyInitError

from comfy_init.ops.models.extra_paths import model_folders

Resolution = namedtuple("Resolution", "instance problems copy_roots")


def instance_ids(layout):
    """Ids of the instances of the tree: configured in the registry or present as directories."""
    ids = set()
    try:
        with os.scandir(layout.instances) as entries:
            ids = {e.name for e in entries if INSTANCE_ID_PATTERN.match(e.name) and e.is_dir(follow_symlinks=False)}
    except (FileNotFoundError, NotADirectoryError):
        pass
    try:
        from comfy_init.store.registry import Registry

        ids |= set(Registry(layout).load()["instances"])
    except (ComfyInitError, KeyError, TypeError):
        pass  # a damaged registry is `registry show`'s to report; the directories still count
    return sorted(ids)


def _inside(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _link_problems(layout, instance, shared):
    path = instance.models
    unshared = "model-path-unshared"
    if not os.path.lexists(path):
        return [Problem(unshared, "the models link is missing", path=path,
                        fix="start the instance (comfy-init run makes the link) or `ln -s ../../shared/models "
                            f"{path}`")], []
    if not os.path.islink(path):
        if os.path.isdir(path):
            return [Problem(unshared, "is a real directory, not the link to shared/models: its models are this "
                            "instance's own", path=path,
                            fix=f"move its files into {layout.shared_models}/ (`models verify --fix` replaces the "
                                "copies shared/models already has), then remove the empty folder")], [path]
        return [Problem(unshared, "is a file, not the link to shared/models", path=path,
                        fix="move it aside; comfy-init run then makes the link")], []
    if os.path.realpath(path) != shared:
        return [Problem(unshared, f"links to {os.readlink(path)!r}, which is not shared/models", path=path,
                        fix=f"`ln -sfn ../../shared/models {path}` (move whatever it points at into shared/models)")], []
    return [], []


def _extra_problems(layout, instance, shared):
    path = instance.extra_model_paths
    try:
        data = read_regular(path)
    except ComfyInitError as error:
        return error.problems, []
    if data is None:
        return [], []
    try:
        entries = model_folders(path, data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        return [Problem("invalid-data", f"cannot be read: {error}", path=path,
                        fix="write it in the format of ComfyUI's extra_model_paths.yaml.example")], []
    problems, roots, own = [], [], os.path.realpath(instance.root)
    for section, folder, target in entries:
        real = os.path.realpath(target)
        if _inside(real, shared):
            continue
        where = "inside the instance" if _inside(real, own) else "outside shared/models"
        problems.append(Problem(
            "model-path-unshared", f"{section}.{folder} resolves to {real}, {where}", path=path,
            fix=f"move those models into {layout.shared_models}/{folder}/ and point the entry there, or remove it"))
        if _inside(real, own) and real not in roots:
            roots.append(real)
    return problems, roots


def _node_model_dirs(instance):
    try:
        with os.scandir(instance.custom_nodes) as nodes:
            candidates = [os.path.join(n.path, "models") for n in nodes if n.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    return [c for c in candidates if os.path.isdir(c) and not os.path.islink(c)]


def resolve(layout, instance_id):
    """A Resolution: the instance's paths, the problems of how it finds models, the folders to search."""
    instance = layout.instance(instance_id)
    shared = os.path.realpath(layout.shared_models)
    link_problems, link_roots = _link_problems(layout, instance, shared)
    extra_problems, extra_roots = _extra_problems(layout, instance, shared)
    roots = link_roots + [r for r in _node_model_dirs(instance) + extra_roots if r not in link_roots]
    return Resolution(instance, link_problems + extra_problems, roots)
