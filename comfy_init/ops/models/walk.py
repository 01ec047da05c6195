"""The walk of model files: os.scandir, one lstat per file (the DirEntry's, reused), no link ever
followed, so its cost is that of a bare lstat walk of the same tree.

A `ModelFile` is (path, key, info, name): the path, the hash-cache key (relative to the data root,
with `/`; absolute outside it), the lstat result and the file name. Links inside a model folder are not followed
(they are not walked, and not reported: a user who links models in knows where they are).
"""

import os
from collections import namedtuple

ModelFile = namedtuple("ModelFile", "path key info name")


def cache_key(layout, path):
    """The hash-cache key of `path`: relative to the data root when under it, else absolute."""
    root = layout.data.rstrip(os.sep) + os.sep
    if path.startswith(root):
        relative = path[len(root):]
        return relative if os.sep == "/" else relative.replace(os.sep, "/")
    return path


def walk_files(layout, top):
    """Every regular file below `top` as a list of ModelFiles, and the directories that could not
    be listed (see iter_files)."""
    unreadable = []
    return list(iter_files(layout, top, unreadable)), unreadable


def iter_listings(layout, top, unreadable):
    """(directory key, [DirEntry of its regular files]) for each directory below `top` (a
    directory; nothing when it is missing or not one), links never followed. The key is what
    cache_key gives the directory (file keys are `<key>/<name>`). Directories that cannot be
    listed are passed over and appended to `unreadable`."""
    root = layout.data.rstrip(os.sep) + os.sep
    cut = len(root)
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            scanner = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            unreadable.append(directory)
            continue
        files = []
        with scanner:
            for entry in scanner:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    files.append(entry)
        inside = os.sep == "/" and directory.startswith(root)
        yield (directory[cut:] if inside else cache_key(layout, directory)), files


def model_file(entry, directory_key, info):
    """The ModelFile of a DirEntry of iter_listings."""
    return tuple.__new__(ModelFile, (entry.path, f"{directory_key}/{entry.name}", info, entry.name))


def iter_files(layout, top, unreadable):
    """Every regular file below `top` as ModelFiles, one at a time (see iter_listings): a caller
    that keeps only what it needs holds no list of 100,000 stat results (keeping them all costs a
    third of the walk again)."""
    for directory_key, entries in iter_listings(layout, top, unreadable):
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone between the listing and the stat
            yield model_file(entry, directory_key, info)
