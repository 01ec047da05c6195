"""Moving a tree to another filesystem: copy, fsync, verify every byte, and only then remove.

The copy is built under `<dst>.comfy-init-copying` and renamed into place once every file's BLAKE3
matches the source's, so a destination name never holds half a tree. Links stay links (same text),
hard links stay hard links, modes, owners and times are kept. The source is removed entry by entry
from the list that was copied: anything that appeared meanwhile stops the removal, and stays.
"""

import os
import stat

from comfy_init.errors import error_for
from comfy_init.ops.migrate.manifest import file_digest
from comfy_init.problems import Problem
from comfy_init.store.files import fsync_directory

COPYING_SUFFIX = ".comfy-init-copying"


def _copy_file(source, target, info, chunk=1 << 20):
    import blake3

    hasher = blake3.blake3()
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            while data := os.read(src, chunk):
                hasher.update(data)
                if data.count(0) == len(data):
                    os.lseek(dst, len(data), os.SEEK_CUR)  # keep holes: sparse models stay sparse
                else:
                    os.write(dst, data)
            os.ftruncate(dst, info.st_size)
            os.fsync(dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)
    return hasher.hexdigest()


def _keep_attributes(path, info):
    if os.geteuid() == 0:
        os.lchown(path, info.st_uid, info.st_gid)
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(path, stat.S_IMODE(info.st_mode))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


class TreeCopy:
    """Copies `source` (a file, link or directory) to `target`; `copied` lists the source paths in
    walk order and `digests` the BLAKE3 of every file, for verification and removal."""

    def __init__(self, source, target):
        self.source, self.target = source, target
        self.copied, self.digests, self._inodes, self._dirs = [], {}, {}, []

    def run(self):
        self._entry(self.source, self.target)
        for path, info in reversed(self._dirs):  # times last: creating entries changed them
            _keep_attributes(path, info)
            fsync_directory(path)

    def _entry(self, source, target):
        info = os.lstat(source)
        self.copied.append(source)
        if stat.S_ISDIR(info.st_mode):
            os.mkdir(target, 0o700)
            self._dirs.append((target, info))
            for name in sorted(os.listdir(source)):
                self._entry(os.path.join(source, name), os.path.join(target, name))
            return
        key = (info.st_dev, info.st_ino)
        if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode) and key in self._inodes:
            os.link(self._inodes[key], target, follow_symlinks=False)
            return
        if stat.S_ISREG(info.st_mode):
            self.digests[source] = _copy_file(source, target, info)
        elif stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(source), target)
        else:  # the plan refuses these; one that appeared since the plan stops the copy
            raise error_for(Problem("changed-while-preparing", "is a FIFO, socket or device file that appeared after "
                                    "the plan was made", path=source, fix="remove it, then run the same command again"))
        self._inodes[key] = target
        _keep_attributes(target, info)

    def verify(self):
        for source, digest in self.digests.items():
            copy = self.target + source[len(self.source):]
            if file_digest(copy) != digest:
                raise error_for(Problem("io-error", f"its copy at {copy} does not read back the same bytes",
                                        path=source, fix="check the target filesystem; the source is kept"))


def remove_copied(source, copied):
    """Remove the entries of `copied` (walk order) bottom-up; a directory that still holds
    something not copied stops it (OSError ENOTEMPTY), so nothing uncopied is ever removed."""
    for path in reversed(copied):
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        else:
            os.unlink(path)
    fsync_directory(os.path.dirname(source))


def tree_listing(root):
    """Path below `root` -> (type bits, size, link text or digest): what two copies must agree on."""
    found = {}
    stack = [root]
    while stack:
        path = stack.pop()
        info = os.lstat(path)
        relative = path[len(root):]
        if stat.S_ISDIR(info.st_mode):
            found[relative] = ("d", 0, None)
            stack.extend(os.path.join(path, name) for name in os.listdir(path))
        elif stat.S_ISLNK(info.st_mode):
            found[relative] = ("l", 0, os.readlink(path))
        elif stat.S_ISREG(info.st_mode):
            found[relative] = ("f", info.st_size, file_digest(path))
        else:
            found[relative] = ("o", 0, None)
    return found


def copy_across(source, target):
    """Copy `source` to `target` (absent, or an empty directory), verify, then remove the source."""
    building = target + COPYING_SUFFIX
    if os.path.lexists(building):
        remove_copied(building, all_entries(building))  # our own half-built copy: the source is whole
    copy = TreeCopy(source, building)
    copy.run()
    copy.verify()
    os.rename(building, target)
    fsync_directory(os.path.dirname(target))
    remove_copied(source, copy.copied)


def finish_copied(source, target):
    """Both sides exist (a kill after the rename): the source goes only if the copy equals it."""
    if tree_listing(source) != tree_listing(target):
        raise error_for(Problem("changed-while-preparing", f"and its copy at {target} differ", path=source,
                                fix="compare the two, keep what you need, then run `comfy-init migrate` again"))
    remove_copied(source, all_entries(source))


def all_entries(root):
    order = []
    stack = [root]
    while stack:
        path = stack.pop()
        order.append(path)
        if os.path.isdir(path) and not os.path.islink(path):
            stack.extend(os.path.join(path, name) for name in sorted(os.listdir(path), reverse=True))
    return order
