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


def walk_files(layout, top, skip=()):
    """Every regular file below `top` (a directory; nothing when it is missing or not one), as
    ModelFiles; directories whose path is in `skip` are not entered. Unreadable directories are
    passed over and returned in the second list."""
    root = layout.data.rstrip(os.sep) + os.sep
    cut = len(root)
    files, unreadable, stack = [], [], [top]
    append = files.append
    while stack:
        directory = stack.pop()
        try:
            scanner = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            unreadable.append(directory)
            continue
        with scanner:
            for entry in scanner:
                if entry.is_dir(follow_symlinks=False):
                    if entry.path not in skip:
                        stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # gone between the listing and the stat
                    path = entry.path
                    append(ModelFile(path, path[cut:] if path.startswith(root) else path, info, entry.name))
    if os.sep != "/":
        files = [ModelFile(f.path, cache_key(layout, f.path), f.info, f.name) for f in files]
    return files, unreadable
