"""The data tree: what must exist for an instance, what is already there, and how to get there.

`plan_tree(layout, instance, multi)` only looks (a fixed number of lstat/readlink calls, never a
walk of models) and returns the steps; every problem found is collected and raised together as
Problem records (comfy_init.problems), whose kinds decide the exit code. Nothing that holds data
is ever deleted: the only thing removed is an EMPTY real directory standing where a link belongs
(rmdir refuses anything else).

Whatever stands in the way ABOVE a leaf (a file, FIFO, link loop or over-long name where the data
root, shared/, instances/ or meta/ should be) is one problem about that path, and nothing below it
is looked at. Directories are only ever created whose parent resolves inside the data root.
"""

import errno
import os
import stat

from comfy_init.errors import ComfyInitError, error_for
from comfy_init.layout import COMPAT_FOLDERS, MODEL_FOLDERS, OWN_FOLDERS, OWNER_NAME
from comfy_init.problems import Problem
from comfy_init.store.files import read_regular
from comfy_init.tree.paths import ALL_INSTANCES, instance_owner, is_inside, look, overlaps
from comfy_init.tree.steps import LINK, MARK_OWNER, MKDIR, OK, RELINK, REPLACE_EMPTY_DIR, Step

_WHAT = ((stat.S_ISREG, "a file"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _what(info):
    for test, name in _WHAT:
        if test(info.st_mode):
            return name
    return "something that is not a directory"


def _entries_summary(path):
    # Only called for a directory that is in the way, to tell the user what it holds.
    try:
        names = sorted(os.listdir(path))
    except OSError as error:
        return f"cannot be listed ({error.strerror})"
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return f"holds {len(names)} entr{'y' if len(names) == 1 else 'ies'} ({shown})"


def _directory_is_empty(path):
    """True or False; None when it cannot be listed."""
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:
        return None


class Planner:
    def __init__(self, data_root):
        self.literal_root = os.path.abspath(data_root)
        self.data_root = os.path.realpath(data_root)
        self.steps = []
        self.problems = []
        self._blocked = []  # paths with a problem: nothing below them is looked at

    def problem(self, kind, path, message, fix):
        self.problems.append(Problem(kind, message, path=path, fix=fix))
        self._blocked.append(path)

    def _under_blocked(self, path):
        return any(is_inside(path, blocked) for blocked in self._blocked)

    def _failed_look(self, path, code):
        """An lstat of `path` failed: say what in the way, once, at the right depth."""
        if code == errno.ENOTDIR:
            self._blocking_ancestor(path)
        elif code == errno.ELOOP:
            self.problem("broken-link", path, "cannot be reached: a link on the way leads in a loop",
                         "replace the looping link with a directory or a link to one")
        elif code == errno.ENAMETOOLONG:
            self.problem("bad-setting", path, "is too long a path for this filesystem",
                         "choose a shorter data directory, instance directory or instance id")
        elif code in (errno.EACCES, errno.EPERM):
            self.problem("cannot-look", path, f"cannot be looked at: permission denied for uid {os.geteuid()}",
                         "make its parent directories readable and searchable (chmod o+x) or run as their owner")
        else:
            self.problem("io-error", path, f"cannot be looked at: {os.strerror(code)}",
                         "check the filesystem of the data directory")

    def _blocking_ancestor(self, path):
        parent = os.path.dirname(path)
        while parent and parent != os.path.dirname(parent):
            found = look(parent)
            if found.info is not None and not stat.S_ISDIR(found.info.st_mode) and not (
                    stat.S_ISLNK(found.info.st_mode) and os.path.isdir(parent)):
                if not self._under_blocked(parent):
                    self._not_a_directory(parent, found.info)
                return
            parent = os.path.dirname(parent)
        self.problem("not-a-directory", path, "cannot be reached: something on the way is not a directory",
                     "make every parent of it a directory")

    def _parent_will_exist(self, path):
        parent = os.path.dirname(path)
        return os.path.isdir(parent) or any(
            step.kind == MKDIR and step.path == parent for step in self.steps)

    def _not_a_directory(self, path, info):
        what = _what(info)
        if stat.S_ISLNK(info.st_mode):
            self.problem("broken-link", path, f"is a link to {_readlink(path)!r}, which is not a directory",
                         "remove the link or make its target a directory")
        else:
            self.problem("not-a-directory", path, f"is {what} where a directory belongs",
                         f"move it away (for example to {path}.moved-aside) and start again")

    def directory(self, path, *, writable=False, link_anywhere=False):
        """A real directory must be at `path`. A link to a directory is accepted inside the data
        root, or anywhere with `link_anywhere` (the old layout's own links, kept as they were)."""
        if self._under_blocked(path):
            return
        found = look(path)
        if found.errno is not None:
            self._failed_look(path, found.errno)
        elif found.info is None:
            parent = os.path.realpath(os.path.dirname(path))
            if (not link_anywhere and is_inside(os.path.dirname(os.path.abspath(path)), self.literal_root)
                    and not is_inside(parent, self.data_root)):
                self.problem("escapes-root", path, f"would be created in {parent}, outside the data root "
                             f"{self.data_root}: a link on the way leads out of it",
                             "replace that link with a directory, or mount the directory it points to instead")
            elif not self._parent_will_exist(path):
                self.problem("missing-path", path, f"cannot be created: its parent {os.path.dirname(path)} "
                             "does not exist", f"create {os.path.dirname(path)} first, or choose a path "
                             "whose parent exists")
            else:
                self.steps.append(Step(MKDIR, path, writable=writable))
        elif stat.S_ISLNK(found.info.st_mode):
            resolved = os.path.realpath(path)
            if not os.path.isdir(path):
                self._not_a_directory(path, found.info)
            elif not link_anywhere and not is_inside(resolved, self.data_root):
                self.problem("escapes-root", path,
                             f"is a link to {_readlink(path)!r}, outside the data root {self.data_root}",
                             f"comfy-init only follows links inside it. Mount that directory at {path} "
                             "instead of linking to it")
            else:
                self.steps.append(Step(OK, path, writable=writable))
        elif stat.S_ISDIR(found.info.st_mode):
            self.steps.append(Step(OK, path, writable=writable))
        else:
            self._not_a_directory(path, found.info)

    def link(self, path, points_to):
        """A relative link at `path` must lead to the directory `points_to`."""
        if self._under_blocked(path):
            return
        target = os.path.relpath(points_to, os.path.dirname(path))
        found = look(path)
        if found.errno is not None:
            self._failed_look(path, found.errno)
        elif found.info is None:
            self.steps.append(Step(LINK, path, target))
        elif stat.S_ISLNK(found.info.st_mode):
            try:
                current = os.readlink(path)
                same_place = current == target or os.path.realpath(path) == os.path.realpath(points_to)
            except OSError as error:
                self._unreadable_link(path, error)
                return
            if current == target:
                self.steps.append(Step(OK, path, target))
            elif same_place:
                # Same place, but absolute (or spelled differently): make it relative so the tree
                # still works when mounted elsewhere. Replacing a link loses no data.
                self.steps.append(Step(RELINK, path, target))
            else:
                self.problem("wrong-link", path, f"is a link to {current!r}, but must lead to {points_to}",
                             f"if that is intended, move the data into {points_to}, then remove the link")
        elif stat.S_ISDIR(found.info.st_mode):
            empty = _directory_is_empty(path)
            if empty is None:
                self.problem("not-writable", path, f"cannot be listed for uid {os.geteuid()}, and a link to "
                             f"{points_to} belongs there", "make it readable, or remove it if it is empty")
            elif empty:
                self.steps.append(Step(REPLACE_EMPTY_DIR, path, target))
            else:
                self.problem("link-expected", path, f"is a real directory that {_entries_summary(path)}, "
                             f"where a link to {points_to} belongs",
                             f"move its contents into {points_to} (or elsewhere), remove the empty "
                             "directory, and start again")
        else:
            self.problem("not-a-directory", path, f"is {_what(found.info)} where a link to {points_to} belongs",
                         "move it away and start again")

    def _unreadable_link(self, path, error):
        # Seen on sshfs, whose Debian build refuses links with `..` (contain_symlinks): ComfyUI
        # could not follow the link either, so the start stops here with the mount's fix.
        self.problem("unreadable-link", path, f"is a link this filesystem refuses to read back "
                     f"({error.strerror}): the shared folders are reached through such links",
                     "mount the share so that relative links work (sshfs: -o no_contain_symlinks; SMB: "
                     "the unix extensions or mfsymlinks); `comfy-init verify-fs DIR` checks it")

    def check_own_folders(self, layout, instance):
        """An instance's directory and its own folders may be links (inside the data root), but they
        must not resolve into another instance, shared/, meta/ or each other: two writers would
        share one folder, and ComfyUI wipes temp at every start."""
        instances = os.path.realpath(layout.instances)
        forbidden = [("shared/", os.path.realpath(layout.shared)), ("meta/", os.path.realpath(layout.meta))]

        def clashes(real, others=()):
            found = [name for name, other in forbidden + list(others) if overlaps(real, other)]
            owner = instance_owner(real, instances)
            if owner is not None and owner != instance.id:
                found.append("every instance's directory" if owner == ALL_INSTANCES else f"instance {owner!r}")
            return found

        root = os.path.realpath(instance.root)
        clash = clashes(root)
        if clash and not self._under_blocked(instance.root):
            self.problem("shared-folder", instance.root, f"resolves to {root}, which overlaps {clash[0]}",
                         "remove the link and let comfy-init create this instance's own directory")
            return
        own = {path: os.path.realpath(path) for path in instance.own_folders()}
        for path, real in own.items():
            clash = clashes(real, [(f"{os.path.basename(p)}/", r) for p, r in own.items() if p != path])
            if clash and not self._under_blocked(path):
                self.problem("shared-folder", path, f"resolves to {real}, which overlaps {clash[0]}: two writers "
                             "would share one folder (and ComfyUI wipes temp at every start)",
                             "replace the link with a real directory of this instance")

    def owner(self, instance):
        """The instance directory names the one instance it belongs to (OWNER_NAME): a directory
        marked for another id is refused, whatever path or link leads to it."""
        if self._under_blocked(instance.root):
            return
        path = instance.owner_file
        try:
            found = read_regular(path)
        except ComfyInitError:
            found = b"?"  # a link, FIFO or directory there: not a mark comfy-init wrote
        if found is None:
            self.steps.append(Step(MARK_OWNER, path, instance.id))
        elif found.decode("utf-8", "replace").strip() == instance.id:
            self.steps.append(Step(OK, path))
        else:
            owner = found.decode("utf-8", "replace").strip()[:63] or "?"
            self.problem("shared-folder", instance.root, f"belongs to instance {owner!r} (its {OWNER_NAME} says "
                         f"so), not to {instance.id!r}: two instances would share one directory",
                         f"give {instance.id!r} its own directory; if {owner!r} no longer exists and this is "
                         f"intended, replace {path} with one holding {instance.id!r}")

    def check_zones(self, layout, instance, multi):
        """shared/ and meta/ (and their folders) may be links inside the data root, but must not
        resolve into each other, into instances/ or into this instance; meta/'s folders stay in
        meta/. Otherwise ComfyUI would write model folders into meta/, or lock files would live
        where ComfyUI writes."""
        real = os.path.realpath
        shared, meta, instances, root = (real(layout.shared), real(layout.meta), real(layout.instances),
                                         real(instance.root))
        others = [("instances/", instances), ("this instance's directory", root)]
        zones = []
        if multi:
            shared_paths = [layout.shared, layout.shared_models, layout.shared_input, layout.shared_workflows]
            shared_paths += [layout.model_folder(name) for name in MODEL_FOLDERS]
            zones += [(path, [("meta/", meta), *others], None) for path in shared_paths]
            others = [("shared/", shared), *others]
        zones.append((layout.meta, others, None))
        zones += [(path, others, meta) for path in layout.meta_folders()]
        for path, forbidden, home in zones:
            if self._under_blocked(path) or not os.path.lexists(path):
                continue
            resolved = real(path)
            clash = [name for name, other in forbidden if overlaps(resolved, other)]
            if home is not None and not is_inside(resolved, home):
                clash.append(f"somewhere outside {home}")
            if clash:
                self.problem("shared-folder", path, f"resolves to {resolved}, which overlaps {clash[0]}",
                             "replace the link with a real directory (only instance folders may point elsewhere)")

    def check_writable(self):
        """Directories ComfyUI must write that it cannot, and parents that block a creation."""
        blocked = {}  # parent directory -> names that must be created in it
        for step in self.steps:
            if step.writable and step.kind == OK and not os.access(step.path, os.W_OK):
                self.problems.append(Problem(
                    "not-writable", "cannot be written, and ComfyUI must write there", path=step.path,
                    fix=f"make it writable for uid {os.geteuid()} (for example `chown {os.geteuid()} "
                        f"{step.path}`), or mount the data directory read-write"))
            elif step.kind in (MKDIR, LINK, REPLACE_EMPTY_DIR, RELINK):
                parent = os.path.dirname(step.path)
                if os.path.isdir(parent) and not os.access(parent, os.W_OK):
                    blocked.setdefault(parent, []).append(os.path.basename(step.path))
        for parent, names in blocked.items():
            self.problems.append(Problem(
                "not-writable", f"cannot be written, and {', '.join(names)} must be created there", path=parent,
                fix=f"make it writable for uid {os.geteuid()}, or mount the data directory read-write"))


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def plan_tree(layout, instance, *, multi):
    """Return the steps that make the tree of `instance` (an InstancePaths of `layout`); raise
    DataError listing every problem (the exit code follows from their kinds)."""
    planner = Planner(layout.data)
    planner.directory(layout.data)
    if multi:
        planner.directory(layout.shared)
        planner.directory(layout.shared_models)
        for name in MODEL_FOLDERS:
            planner.directory(layout.model_folder(name))
        planner.directory(layout.shared_input, writable=True)
        planner.directory(layout.shared_workflows)
        if os.path.dirname(instance.root) == layout.instances:
            planner.directory(layout.instances)
        planner.directory(instance.root)
        for name in OWN_FOLDERS:
            planner.directory(instance.folder(name), writable=True)
        planner.link(instance.models, layout.shared_models)
        planner.link(instance.input, layout.shared_input)
        planner.check_own_folders(layout, instance)
        planner.owner(instance)
    else:
        # The old layout is used as it is, links to other disks included: nothing in it is changed.
        planner.directory(instance.root, link_anywhere=True)
        for name in COMPAT_FOLDERS:
            planner.directory(instance.folder(name), link_anywhere=True, writable=name != "models")
    planner.directory(layout.meta, writable=True)
    for path in layout.meta_folders():
        planner.directory(path, writable=True)
    planner.check_zones(layout, instance, multi)
    planner.check_writable()
    if planner.problems:
        raise error_for(*planner.problems)
    return planner.steps
