"""Where each instance finds its model folders, and which of its folders can hold copies of models.

An instance resolves its models to shared/models when `instances/<id>/models` is the link the tree
makes (any link whose target resolves to shared/models) and every model folder of the
extra_model_paths.yaml files ComfyUI reads for it resolves into shared/models too. Those are:
- the checkout's `extra_model_paths.yaml` and `extra_paths.yaml` (COMFY_APP_DIRECTORY, when
  known here), which every instance of that image reads;
- every `--extra-model-paths-config PATH...` of the instance's `cli_args` in the registry (a
  path under the container's /data is read under --data);
- `instances/<id>/extra_model_paths.yaml`, the place docs/models.md suggests for an instance's
  own file (given to ComfyUI with `--extra-model-paths-config`).

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


CONTAINER_DATA = "/data"  # where the compose files mount the data tree inside a container
CONFIG_FLAG = "--extra-model-paths-config"


def configured(layout):
    """{id: registry entry} of the configured instances ({} when the registry cannot be read)."""
    try:
        from comfy_init.store.registry import Registry

        return dict(Registry(layout).load()["instances"])
    except (ComfyInitError, KeyError, TypeError):
        return {}  # a damaged registry is `registry show`'s to report; the directories still count


def instance_ids(layout):
    """Ids of the instances of the tree: configured in the registry or present as directories."""
    ids = set()
    try:
        with os.scandir(layout.instances) as entries:
            ids = {e.name for e in entries if INSTANCE_ID_PATTERN.match(e.name) and e.is_dir(follow_symlinks=False)}
    except (FileNotFoundError, NotADirectoryError):
        pass
    return sorted(ids | set(configured(layout)))


def _host_path(layout, path):
    """A path as the container sees it, read here: /data/... is under --data."""
    if path == CONTAINER_DATA or path.startswith(CONTAINER_DATA + "/"):
        return os.path.join(layout.data, os.path.relpath(path, CONTAINER_DATA))
    return path


def yaml_files(layout, instance, entry, app_dir):
    """The extra_model_paths.yaml files ComfyUI reads for this instance (those that exist or are named)."""
    files = [os.path.join(app_dir, name) for name in ("extra_model_paths.yaml", "extra_paths.yaml")] if app_dir else []
    args, taking = list((entry or {}).get("cli_args") or []), False
    for arg in args:
        if arg.startswith(CONFIG_FLAG + "="):
            files.append(arg.split("=", 1)[1])
        elif arg == CONFIG_FLAG:
            taking = True
        elif taking and not arg.startswith("-"):
            files.append(arg if os.path.isabs(arg) else os.path.join(CONTAINER_DATA, "instances", instance.id, arg))
        else:
            taking = False
    files = [_host_path(layout, f) for f in files] + [instance.extra_model_paths]
    return list(dict.fromkeys(files))


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


def _extra_problems(layout, instance, shared, path):
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


def resolve(layout, instance_id, entry=None, app_dir=None):
    """A Resolution: the instance's paths, the problems of how it finds models, the folders to
    search. `entry` is its registry entry (for cli_args), `app_dir` the ComfyUI checkout, if known."""
    instance = layout.instance(instance_id)
    shared = os.path.realpath(layout.shared_models)
    problems, roots = _link_problems(layout, instance, shared)
    for path in yaml_files(layout, instance, entry, app_dir):
        more, extra_roots = _extra_problems(layout, instance, shared, path)
        problems += more
        roots += [r for r in extra_roots if r not in roots]
    roots += [r for r in _node_model_dirs(instance) if r not in roots]
    return Resolution(instance, problems, roots)
