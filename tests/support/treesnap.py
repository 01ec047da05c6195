"""Snapshots of a directory tree's metadata and bytes, to prove that a command changed nothing."""

import os


def snapshot(root):
    """{relative path: (kind, mode, uid, gid, mtime_ns, inode, link target or content)} for every entry."""
    entries = {}
    if not os.path.lexists(root):
        return entries
    for directory, names, files in os.walk(root):
        for name in names + files + [""]:
            path = os.path.join(directory, name) if name else directory
            info = os.lstat(path)
            if os.path.islink(path):
                content = ("link", os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as file:
                    content = ("file", file.read())
            else:
                content = ("dir", None)
            entries[os.path.relpath(path, root)] = (
                content, info.st_mode, info.st_uid, info.st_gid, info.st_mtime_ns, info.st_ino)
        # do not follow links into directories: os.walk lists them in names but does not descend
    return entries
