"""The data tree's layout: every path of it, for any instance, in one place.

    <data>/shared/{models/<folders>, input, workflows}
    <data>/instances/<id>/{custom_nodes, user, temp, output, models -> ../../shared/models, input -> ...}
    <data>/meta/{instance-registry.json, locks/, backup-snapshots/, shared-configs/, trash/, ...}
    <data>/comfy/{models, custom_nodes, input, output, temp, user}   (compatibility mode)

Nothing else in comfy-init joins path strings of the tree: a command about instance `b`, run from
a host shell, asks `Layout(data).instance("b").user`. Pure string work, no disk access, stdlib
only: this is on the start-up path of PID 1.
"""

import os
import re

# ComfyUI's model folders (folder_paths.py), the legacy names clip and unet included, so every
# instance and every ComfyUI release finds the same shared folders.
MODEL_FOLDERS = (
    "audio_encoders", "checkpoints", "classifiers", "clip", "clip_vision", "configs", "controlnet",
    "diffusers", "diffusion_models", "embeddings", "gligen", "hypernetworks", "loras",
    "model_patches", "photomaker", "style_models", "t2i_adapter", "text_encoders", "unet",
    "upscale_models", "vae", "vae_approx",
)
# Each instance's own folders: nothing in them may be shared between two ComfyUI processes.
OWN_FOLDERS = ("custom_nodes", "user", "temp", "output")
# What an instance reaches through links into shared/.
SHARED_LINKS = ("models", "input")
# The flat layout of the single-instance images this replaces; compatibility mode keeps it.
COMPAT_FOLDERS = ("models", "custom_nodes", "input", "output", "temp", "user")
# The instance id compatibility mode claims under (its tree has no id of its own).
COMPAT_INSTANCE_ID = "comfy"
# Instance ids are DNS labels, so they fit compose service, pod and host names.
INSTANCE_ID_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Names an instance may not have: compatibility mode's claim, and the compose tools service.
RESERVED_IDS = (COMPAT_INSTANCE_ID, "comfy-init")
# Template names (folders under meta/shared-configs/): no slash, no leading dot (the lock is `.lock`).
TEMPLATE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TEMPLATE_FILE = "template.json"
# The instance files a template captures and applies, relative to the instance directory: settings,
# keybindings, and ComfyUI-Manager's config (the 4.x place first, then the older one).
TEMPLATE_SETTINGS = "user/default/comfy.settings.json"
TEMPLATE_KEYBINDINGS = "user/default/comfy.keybindings.json"
TEMPLATE_MANAGER_CONFIGS = ("user/__manager/config.ini", "user/default/ComfyUI-Manager/config.ini")
TEMPLATE_CAPTURED = (TEMPLATE_SETTINGS, TEMPLATE_KEYBINDINGS) + TEMPLATE_MANAGER_CONFIGS

REGISTRY_NAME = "instance-registry.json"
# In the instance's own user folder: written by ComfyUI-Manager as ComfyUI's user, and not in temp,
# which ComfyUI deletes on exit.
SESSION_NAME = "comfy-init-session"
DATABASE_NAME = "comfyui.db"
# In every instance directory: the id it belongs to, so two ids can never share one directory.
OWNER_NAME = ".comfy-init-instance"
# The instance's own Python environment: its folder, its tag (the image build it was made for,
# written last) and its constraints; where a new one is built, and where an old one is kept.
VENV_NAME = "venv"
VENV_TAG_NAME = "comfy-init-venv.json"
VENV_CONSTRAINTS_NAME = "comfy-init-constraints.txt"
VENV_BUILDING_PREFIX = ".venv.building-"
VENV_MOVED_PREFIX = "venv.moved-"
VENV_RESTORED_NAME = "venv-requirements.restored.txt"


def before_template_name(path, stamp):
    """The name a file replaced by `template apply` is kept under: <path>.before-template-<UTC>."""
    return f"{path}.before-template-{stamp}"

# -- models and workflows ------------------------------------------------------------------
EXTRA_MODEL_PATHS_NAME = "extra_model_paths.yaml"
# One component of a workflow name: no slash, no leading dot (dot names are comfy-init's own files).
_WORKFLOW_PART = re.compile(r"\A[^/\\\x00-\x1f.][^/\\\x00-\x1f]{0,127}\Z")


def workflow_name(name):
    """`name` without a trailing .json, checked: path components under the workflow folder (a
    subfolder is allowed: `sdxl/portrait`), none empty, `.`-led or `..`; ValueError otherwise."""
    text = name[:-5] if isinstance(name, str) and name.endswith(".json") else name
    if not isinstance(text, str) or not text or not all(_WORKFLOW_PART.match(p) for p in text.split("/")):
        raise ValueError(f"not a workflow name: {name!r}")
    return text


# Snapshot archives (zstandard; gzip ones are read too) and the manifest copy beside each.
SNAPSHOT_SUFFIX = ".tar.zst"
SNAPSHOT_SUFFIXES = (".tar.zst", ".tar.gz", ".tgz")
MANIFEST_SUFFIX = ".manifest.json"


class InstancePaths:
    """The paths of one instance. `root` is what ComfyUI gets as --base-directory.

    In multi-instance mode `models` and `input` are links into shared/; in compatibility mode
    (`compat`) they are the old layout's own folders.
    """

    __slots__ = ("id", "root", "compat")

    def __init__(self, instance_id, root, compat=False):
        self.id = instance_id
        self.root = root
        self.compat = compat

    def _join(self, name):
        return os.path.join(self.root, name)

    custom_nodes = property(lambda self: self._join("custom_nodes"))
    user = property(lambda self: self._join("user"))
    temp = property(lambda self: self._join("temp"))
    output = property(lambda self: self._join("output"))
    models = property(lambda self: self._join("models"))
    input = property(lambda self: self._join("input"))
    # The instance's own Python environment (comfy_init/venv, docs/venv.md) and its files.
    venv = property(lambda self: self._join(VENV_NAME))
    venv_python = property(lambda self: os.path.join(self.venv, "bin", "python"))
    venv_tag = property(lambda self: os.path.join(self.venv, VENV_TAG_NAME))
    venv_constraints = property(lambda self: os.path.join(self.venv, VENV_CONSTRAINTS_NAME))
    # Written by `snapshot restore` (the environment's freeze the snapshot recorded): the next
    # environment made for this instance reinstalls it, then keeps it inside itself.
    venv_restored = property(lambda self: self._join(VENV_RESTORED_NAME))

    def venv_building(self, token):
        """Where a new environment is made before it is renamed to venv/ (a dot name: never a folder
        ComfyUI uses)."""
        return self._join(f"{VENV_BUILDING_PREFIX}{token}")

    def venv_moved(self, stamp):
        """Where an environment made for another image is kept: venv.moved-<UTC>. Never deleted."""
        return self._join(f"{VENV_MOVED_PREFIX}{stamp}")

    database = property(lambda self: os.path.join(self.user, DATABASE_NAME))
    session_file = property(lambda self: os.path.join(self.user, SESSION_NAME))
    owner_file = property(lambda self: self._join(OWNER_NAME))

    # -- models and workflows (comfy-init models verify, workflows publish|import) ------------
    # The default user's workflow folder, where ComfyUI's UI saves and lists workflows.
    workflows = property(lambda self: os.path.join(self.user, "default", "workflows"))
    # An instance's own extra_model_paths.yaml: ComfyUI reads it when CLI_ARGS pass it with
    # --extra-model-paths-config (models verify always looks at it).
    extra_model_paths = property(lambda self: self._join(EXTRA_MODEL_PATHS_NAME))

    def workflow(self, name):
        """workflows/<name>.json: one workflow of the default user (`name` as workflow_name checks)."""
        return os.path.join(self.workflows, *workflow_name(name).split("/")) + ".json"

    def template_target(self, relative):
        """Where a template file (one of TEMPLATE_CAPTURED) lives in this instance."""
        if relative not in TEMPLATE_CAPTURED:
            raise ValueError(f"not a template file: {relative!r}")
        return os.path.join(self.root, *relative.split("/"))

    def custom_node(self, name):
        """custom_nodes/<name>: one custom node's folder (a plain name, no slash)."""
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            raise ValueError(f"not a custom node folder name: {name!r}")
        return os.path.join(self.custom_nodes, name)

    def node_clone_dir(self, name, token):
        """Where `template apply` clones a node before renaming it to custom_nodes/<name>."""
        return os.path.join(self.custom_nodes, f".{name}.cloning-{token}")

    def folder(self, name):
        """One of COMPAT_FOLDERS (= OWN_FOLDERS + SHARED_LINKS) by name."""
        if name not in COMPAT_FOLDERS:
            raise ValueError(f"not an instance folder: {name!r}")
        return self._join(name)

    def own_folders(self):
        """The folders ComfyUI writes that belong to this instance alone (compatibility mode: the
        old layout's input too, which no other instance shares)."""
        names = OWN_FOLDERS + (("input",) if self.compat else ())
        return [self._join(name) for name in names]

    def __repr__(self):
        return f"InstancePaths({self.id!r}, {self.root!r}{', compat' if self.compat else ''})"


class Layout:
    """The paths of one data tree. `shared_dir` defaults to <data>/shared."""

    __slots__ = ("data", "shared")

    def __init__(self, data_dir, shared_dir=None):
        self.data = data_dir
        self.shared = shared_dir or os.path.join(data_dir, "shared")

    # -- shared ------------------------------------------------------------------------------
    shared_models = property(lambda self: os.path.join(self.shared, "models"))
    shared_input = property(lambda self: os.path.join(self.shared, "input"))
    shared_workflows = property(lambda self: os.path.join(self.shared, "workflows"))

    def model_folder(self, name):
        return os.path.join(self.shared_models, name)

    # -- shared workflows (comfy-init workflows) -----------------------------------------------
    # Who published each shared workflow and when (a dot name: never a workflow), and its lock.
    shared_workflows_index = property(lambda self: os.path.join(self.shared_workflows, ".published.json"))
    shared_workflows_lock = property(lambda self: os.path.join(self.shared_workflows, ".lock"))

    def shared_workflow(self, name):
        """shared/workflows/<name>.json (`name` as workflow_name checks)."""
        return os.path.join(self.shared_workflows, *workflow_name(name).split("/")) + ".json"

    # -- instances ---------------------------------------------------------------------------
    instances = property(lambda self: os.path.join(self.data, "instances"))

    def instance(self, instance_id, root=None):
        """The paths of instance `instance_id`, at <data>/instances/<id> unless `root` says otherwise."""
        return InstancePaths(instance_id, root or os.path.join(self.instances, instance_id))

    def compat_instance(self, base_dir=None, instance_id=None):
        """The single-instance layout of compatibility mode, at <data>/comfy unless `base_dir`."""
        return InstancePaths(instance_id or COMPAT_INSTANCE_ID, base_dir or self.compat_base, compat=True)

    compat_base = property(lambda self: os.path.join(self.data, "comfy"))

    # -- meta --------------------------------------------------------------------------------
    meta = property(lambda self: os.path.join(self.data, "meta"))
    registry = property(lambda self: os.path.join(self.meta, REGISTRY_NAME))
    locks = property(lambda self: os.path.join(self.meta, "locks"))
    snapshots = property(lambda self: os.path.join(self.meta, "backup-snapshots"))
    shared_configs = property(lambda self: os.path.join(self.meta, "shared-configs"))
    trash = property(lambda self: os.path.join(self.meta, "trash"))
    compose_file = property(lambda self: os.path.join(self.meta, "compose.instances.yml"))
    # `comfy-init migrate`: its append-only journal, the manifest of the tree it moves, and where
    # model files it found twice (same path, same content) are kept until the user empties trash.
    migration_journal = property(lambda self: os.path.join(self.meta, "migration-journal.jsonl"))
    migration_manifest = property(lambda self: os.path.join(self.meta, "migration-manifest.json"))
    migration_lock = property(lambda self: os.path.join(self.locks, ".migration.lock"))  # no id starts with "."
    # Held by `models verify --fix` / `check --fix` while a copy is being replaced by a hard link.
    model_dedupe_lock = property(lambda self: os.path.join(self.locks, ".model-dedupe.lock"))
    model_hash_cache = property(lambda self: os.path.join(self.meta, "model-hashes.json"))
    # Taken by every writer of the model hash cache (`models verify`, `check`).
    model_hash_cache_lock = property(lambda self: os.path.join(self.meta, "model-hashes.json.lock"))
    # Kept when the cache is found damaged and rebuilt.
    model_hash_cache_damaged = property(lambda self: os.path.join(self.meta, "model-hashes.json.damaged"))

    def meta_folders(self):
        """The folders under meta/ that every start makes sure of."""
        return [self.shared_configs, self.snapshots, self.locks]

    def lock_path(self, instance_id):
        """The flock a running comfy-init holds for its instance's whole life."""
        return os.path.join(self.locks, f"{instance_id}.lock")

    def workflows_lock(self, instance_id):
        """Held while `workflows import` writes into the instance's workflow folder (in meta/locks,
        not in the folder: taking it creates nothing in the instance; ids have no dot)."""
        return os.path.join(self.locks, f"{instance_id}.workflows.lock")

    def snapshot_dir(self, instance_id):
        return os.path.join(self.snapshots, instance_id)

    def snapshot_archive(self, instance_id, name, suffix=SNAPSHOT_SUFFIX):
        """One snapshot's archive: <snapshots>/<id>/<UTC>-<short id>.tar.zst."""
        return os.path.join(self.snapshot_dir(instance_id), name + suffix)

    def snapshot_manifest(self, instance_id, name):
        """The copy of a snapshot's manifest beside its archive (the archive holds the original)."""
        return os.path.join(self.snapshot_dir(instance_id), name + MANIFEST_SUFFIX)

    def snapshot_lock(self, instance_id):
        """Held while a snapshot of the instance is written, pruned or deleted."""
        return os.path.join(self.snapshot_dir(instance_id), ".lock")

    def restore_staging(self, instance_id, token):
        """Where a restore extracts, beside the instance directory, before swapping it in by rename.
        Dot names are never instance ids, so `instance list` does not count it."""
        return os.path.join(self.instances, f".restore-{instance_id}-{token}")

    def template_dir(self, name):
        return os.path.join(self.shared_configs, name)

    def template_manifest(self, name):
        """meta/shared-configs/<name>/template.json: what the template holds (versioned)."""
        return self.manifest_in(self.template_dir(name))

    @staticmethod
    def manifest_in(template_dir):
        """template.json in a template folder (the final one or the one being built)."""
        return os.path.join(template_dir, TEMPLATE_FILE)

    def template_file(self, template_dir, relative):
        """A captured instance file (one of TEMPLATE_CAPTURED) inside a template folder (the final
        one or the one being built): <template>/files/<relative>."""
        if relative not in TEMPLATE_CAPTURED:
            raise ValueError(f"not a template file: {relative!r}")
        return os.path.join(template_dir, "files", *relative.split("/"))

    # Taken while a template is created or deleted; a dot name is never a template name.
    templates_lock = property(lambda self: os.path.join(self.shared_configs, ".lock"))

    def template_building_dir(self, name, token):
        """Where `template create` assembles a template before renaming it into place."""
        return os.path.join(self.shared_configs, f".{name}.building-{token}")

    def trash_entry(self, name):
        """meta/trash/<name>: where a deleted instance or template is moved."""
        return os.path.join(self.trash, name)

    def __repr__(self):
        return f"Layout({self.data!r})"
