"""Small path facts the tree's planner and appliers share: containment and a safe look."""

import errno
import os


def is_inside(path, root):
    """`path` is `root` or below it (both already normalised or resolved)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def overlaps(a, b):
    """One of the two trees contains the other."""
    return is_inside(a, b) or is_inside(b, a)


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
