"""Which filesystem a path is on, as rename(2) sees it: the device AND the mount. Two bind mounts
of one disk share a device number, yet rename between them fails with EXDEV, so a migration that
renames must know the mount too (from /proc/self/mountinfo)."""

import os


def _mount_points():
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
            return {_unescape(line.split()[4]) for line in table if len(line.split()) > 4}
    except OSError:
        return {"/"}


def _unescape(field):
    # mountinfo writes space, tab, newline and backslash as octal escapes (\040 ...)
    return field.encode("latin-1", "surrogateescape").decode("unicode_escape").encode(
        "latin-1").decode("utf-8", "surrogateescape")


def _existing(path):
    while not os.path.lexists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def filesystem_of(path, mounts=None):
    """(device, mount point) of `path`, or of its nearest existing parent (where it will be made)."""
    mounts = _mount_points() if mounts is None else mounts
    real = os.path.realpath(_existing(path))
    probe = real
    while probe not in mounts and probe != "/":
        probe = os.path.dirname(probe)
    return os.stat(real).st_dev, probe


def is_mount_point(path, mounts=None):
    """`path` is a mount point itself (a bind mount too): a rename can never move it."""
    mounts = _mount_points() if mounts is None else mounts
    real = os.path.realpath(path)
    if real in mounts:
        return True
    try:
        return os.lstat(real).st_dev != os.lstat(os.path.dirname(real)).st_dev
    except OSError:
        return False


class Filesystems:
    """The mount table read once for one plan."""

    def __init__(self):
        self.mounts = _mount_points()

    def of(self, path):
        return filesystem_of(path, self.mounts)

    def differ(self, a, b):
        return self.of(a) != self.of(b)

    def is_mount_point(self, path):
        return is_mount_point(path, self.mounts)
