"""The data tree: what must exist for an instance, what is already there, and how to get there.

`plan_tree(config)` only looks (a fixed number of lstat/readlink calls, never a walk of models)
and returns the steps; every problem found is collected and raised together. `apply_steps` then
makes the missing parts. Nothing that holds data is ever deleted: the only thing removed is an
EMPTY real directory standing where a link belongs (rmdir refuses anything else), and links are
created under a temporary name and renamed into place, so a crash never leaves a half-made link.
"""

import errno
import os
import stat

from comfy_init.errors import (
    CannotCreateError, DataError, PermissionDeniedError)

# ComfyUI's model folders (folder_paths.py), the legacy names clip and unet included, so every
# instance and every ComfyUI release finds the same shared folders.
MODEL_FOLDERS = (
    "audio_encoders", "checkpoints", "classifiers", "clip", "clip_vision", "configs", "controlnet",
    "diffusers", "diffusion_models", "embeddings", "gligen", "hypernetworks", "loras",
    "model_patches", "photomaker", "style_models", "t2i_adapter", "text_encoders", "unet",
    "upscale_models", "vae", "vae_approx",
)
# Each instance's own folders: nothing in them may be shared between two ComfyUI processes.
INSTANCE_FOLDERS = ("custom_nodes", "user", "temp", "output")
# The flat layout of the single-instance images this replaces; compatibility mode keeps it.
COMPAT_FOLDERS = ("models", "custom_nodes", "input", "output", "temp", "user")
META_FOLDERS = ("shared-configs", "backup-snapshots", "locks")

# Step kinds. "ok" means already in place; the others change the disk.
OK = "ok"
MKDIR = "mkdir"
LINK = "link"
REPLACE_EMPTY_DIR = "replace-empty-dir"
RELINK = "relink"
MOVE_ASIDE = "move-aside"

DESCRIPTIONS = {
    OK: "already in place",
    MKDIR: "create directory",
    LINK: "create link",
    REPLACE_EMPTY_DIR: "replace empty directory with link",
    RELINK: "rewrite link",
    MOVE_ASIDE: "move aside, then link",
}


class Step:
    """One path of the tree: what it must be, and what (if anything) to do about it."""

    __slots__ = ("kind", "path", "target", "writable")

    def __init__(self, kind, path, target=None, writable=False):
        self.kind = kind
        self.path = path
        self.target = target
        self.writable = writable

    @property
    def changes_disk(self):
        return self.kind != OK

    def describe(self):
        text = f"{DESCRIPTIONS[self.kind]:<34} {self.path}"
        return f"{text} -> {self.target}" if self.target else text

    def as_dict(self):
        return {"action": DESCRIPTIONS[self.kind], "path": self.path, "target": self.target}


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise PermissionDeniedError(
            f"cannot look at {path}: permission denied for uid {os.geteuid()}; make its parent "
            "directories readable and searchable (chmod o+x) or run as their owner") from None


def _is_inside(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _entries_summary(path):
    # Only called for a directory that is in the way, to tell the user what it holds.
    try:
        names = sorted(os.listdir(path))
    except OSError as error:
        return f"cannot be listed ({error.strerror})"
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return f"holds {len(names)} entr{'y' if len(names) == 1 else 'ies'} ({shown})"


class _Planner:
    def __init__(self, data_root):
        self.data_root = os.path.realpath(data_root)
        self.steps = []
        self.problems = []

    def directory(self, path, *, writable=False, link_anywhere=False):
        """A real directory must be at `path`. A link to a directory is accepted inside the data
        root, or anywhere with `link_anywhere` (the old layout's own links, kept as they were)."""
        info = _lstat(path)
        if info is None:
            self.steps.append(Step(MKDIR, path, writable=writable))
        elif stat.S_ISLNK(info.st_mode):
            resolved = os.path.realpath(path)
            if not link_anywhere and not _is_inside(resolved, self.data_root):
                self.problems.append(
                    f"{path}: is a link to {os.readlink(path)!r}, outside the data root {self.data_root}; "
                    f"comfy-init only follows links inside it. Mount that directory at {path} instead "
                    "of linking to it")
            elif not os.path.isdir(path):
                self.problems.append(
                    f"{path}: is a link to {os.readlink(path)!r}, which is not a directory; "
                    "remove the link or make its target a directory")
            else:
                self.steps.append(Step(OK, path, writable=writable))
        elif stat.S_ISDIR(info.st_mode):
            self.steps.append(Step(OK, path, writable=writable))
        else:
            self.problems.append(
                f"{path}: is a file where a directory belongs; move it away (for example to "
                f"{path}.moved-aside) and start again")

    def link(self, path, points_to):
        """A relative link at `path` must lead to the directory `points_to`."""
        target = os.path.relpath(points_to, os.path.dirname(path))
        info = _lstat(path)
        if info is None:
            self.steps.append(Step(LINK, path, target))
        elif stat.S_ISLNK(info.st_mode):
            current = os.readlink(path)
            if current == target:
                self.steps.append(Step(OK, path, target))
            elif os.path.realpath(path) == os.path.realpath(points_to):
                # Same place, but absolute (or spelled differently): make it relative so the tree
                # still works when mounted elsewhere. Replacing a link loses no data.
                self.steps.append(Step(RELINK, path, target))
            else:
                self.problems.append(
                    f"{path}: is a link to {current!r}, but must lead to {points_to}; "
                    f"if that is intended, move the data into {points_to}, then remove the link")
        elif stat.S_ISDIR(info.st_mode):
            empty = _directory_is_empty(path)
            if empty is None:
                self.problems.append(
                    f"cannot write {path}: it cannot be listed for uid {os.geteuid()}, and a link to "
                    f"{points_to} belongs there; make it readable, or remove it if it is empty")
            elif empty:
                self.steps.append(Step(REPLACE_EMPTY_DIR, path, target))
            else:
                self.problems.append(
                    f"{path}: is a real directory that {_entries_summary(path)}, where a link to "
                    f"{points_to} belongs; move its contents into {points_to} (or elsewhere), "
                    "remove the empty directory, and start again")
        else:
            self.problems.append(
                f"{path}: is a file where a link to {points_to} belongs; move it away and start again")


def _directory_is_empty(path):
    """True or False; None when it cannot be listed."""
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:
        return None


def plan_tree(config):
    """Return the steps that make `config`'s data tree; raise DataError listing every obstacle."""
    planner = _Planner(config.data_dir)
    planner.directory(config.data_dir)
    if config.multi_instance:
        shared = config.shared_dir
        planner.directory(shared)
        planner.directory(os.path.join(shared, "models"))
        for name in MODEL_FOLDERS:
            planner.directory(os.path.join(shared, "models", name))
        planner.directory(os.path.join(shared, "input"), writable=True)
        planner.directory(os.path.join(shared, "workflows"))
        instance = config.instance_dir
        if os.path.dirname(instance) == os.path.join(config.data_dir, "instances"):
            planner.directory(os.path.dirname(instance))
        planner.directory(instance)
        for name in INSTANCE_FOLDERS:
            planner.directory(os.path.join(instance, name), writable=True)
        planner.link(os.path.join(instance, "models"), os.path.join(shared, "models"))
        planner.link(os.path.join(instance, "input"), os.path.join(shared, "input"))
    else:
        # The old layout is used as it is, links to other disks included: nothing in it is changed.
        planner.directory(config.base_dir, link_anywhere=True)
        for name in COMPAT_FOLDERS:
            planner.directory(os.path.join(config.base_dir, name), link_anywhere=True,
                              writable=name in ("custom_nodes", "user", "temp", "output", "input"))
    planner.directory(config.meta_dir, writable=True)
    for name in META_FOLDERS:
        planner.directory(os.path.join(config.meta_dir, name), writable=True)

    planner.problems.extend(_unwritable(planner.steps))
    if planner.problems:
        first_code = DataError
        if all(line.startswith("cannot write") for line in planner.problems):
            first_code = PermissionDeniedError
        raise first_code(*planner.problems)
    return planner.steps


def _unwritable(steps):
    problems = []
    blocked = {}  # parent directory -> names that must be created in it
    for step in steps:
        if step.writable and step.kind == OK and not os.access(step.path, os.W_OK):
            problems.append(
                f"cannot write {step.path}: ComfyUI must write there; make it writable for uid "
                f"{os.geteuid()} (for example `chown {os.geteuid()} {step.path}`), or mount the data "
                "directory read-write")
        elif step.kind == MKDIR:
            parent = os.path.dirname(step.path)
            if os.path.isdir(parent) and not os.access(parent, os.W_OK):
                blocked.setdefault(parent, []).append(os.path.basename(step.path))
    for parent, names in blocked.items():
        problems.append(
            f"cannot write {parent}: {', '.join(names)} must be created there; make it writable for "
            f"uid {os.geteuid()}, or mount the data directory read-write")
    return problems


def apply_steps(steps):
    """Carry out the steps that change the disk, in order. Safe to race with another instance."""
    for step in steps:
        try:
            _apply(step)
        except PermissionError as error:
            raise PermissionDeniedError(
                f"cannot write {error.filename or step.path}: permission denied while "
                f"'{DESCRIPTIONS[step.kind]}'; make its parent writable for uid {os.geteuid()} "
                "or mount the data directory read-write") from None
        except OSError as error:
            raise CannotCreateError(
                f"cannot {DESCRIPTIONS[step.kind]} {step.path}: {error.strerror or error}; "
                "check that the data directory's filesystem is mounted read-write and has space") from None


def _apply(step):
    if step.kind == MKDIR:
        _make_directory(step.path)
    elif step.kind == LINK:
        _make_new_link(step.path, step.target)
    elif step.kind == RELINK:
        _replace_link(step.path, step.target)
    elif step.kind == REPLACE_EMPTY_DIR:
        try:
            os.rmdir(step.path)  # refuses a directory that gained files since planning
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise DataError(
                    f"{step.path}: files appeared in this directory while preparing the tree; "
                    "move them into the shared folder and start again") from None
            raise
        _make_new_link(step.path, step.target)
    elif step.kind == MOVE_ASIDE:
        os.rename(step.path, unused_name(step.path + ".image-original"))
        _make_new_link(step.path, step.target)


def _make_directory(path):
    try:
        os.mkdir(path)
    except FileExistsError:
        # Another instance made it between our look and now: fine if it is a directory.
        if not os.path.isdir(path):
            raise DataError(f"{path}: appeared as a file while preparing the tree; move it away") from None


def _make_new_link(path, target):
    """symlink() is atomic and never replaces anything: what appeared since planning is kept."""
    try:
        os.symlink(target, path)
    except FileExistsError:
        raise DataError(f"{path}: something appeared here while preparing the tree; it was left as it "
                        "is: move it away and start again") from None


def _replace_link(path, target):
    """Point an existing link elsewhere: a new link under a temporary name, renamed over the old one,
    so the path is never missing. Only a link is ever replaced."""
    if not os.path.islink(path):
        raise DataError(f"{path}: is no longer a link; it was left as it is: move it away and start again")
    temporary = f"{path}.comfy-init-link-{os.getpid()}"
    try:
        os.unlink(temporary)  # a leftover of a crash at exactly this point
    except FileNotFoundError:
        pass
    os.symlink(target, temporary)
    try:
        os.replace(temporary, path)
    except OSError:
        os.unlink(temporary)
        raise


def unused_name(path):
    """`path`, or `path.1`, `path.2`, ... : the first name nothing stands at, so nothing is overwritten."""
    candidate, number = path, 0
    while _lstat(candidate) is not None:
        number += 1
        candidate = f"{path}.{number}"
    return candidate
