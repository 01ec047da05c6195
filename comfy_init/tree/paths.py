"""Small path facts the tree's planner and appliers share: containment and a safe look."""

import errno
import os


def is_inside(path, root):
    """`path` is `root` or below it (both already normalised or resolved)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def overlaps(a, b):
    """One of the two trees contains the other."""
    return is_inside(a, b) or is_inside(b, a)


ALL_INSTANCES = "<all instances>"


def instance_owner(path, instances):
    """Whose directory under `instances` (the instances/ folder) `path` lies in: an instance id,
    ALL_INSTANCES when `path` is instances/ itself or above it, or None when it is elsewhere.
    Both paths in the same form (both resolved, or both as written)."""
    if is_inside(instances, path):
        return ALL_INSTANCES
    if is_inside(path, instances):
        return os.path.relpath(path, instances).split(os.sep)[0]
    return None


class Look:
    """What lstat said about a path: `info` (None when nothing is there) or `errno` of a failure."""

    __slots__ = ("info", "errno")

    def __init__(self, info=None, error=None):
        self.info = info
        self.errno = error


def look(path):
    try:
        return Look(os.lstat(path))
    except FileNotFoundError:
        return Look()
    except OSError as error:
        return Look(error=error.errno or errno.EIO)
