"""Moving a tree to another filesystem: copy, fsync, verify every byte, and only then remove.

The copy is built under `<dst>.comfy-init-copying-<token>` (the plan's random token: never a name
of the user's) and renamed into place once every file's BLAKE3 matches the source's, so a
destination name never holds half a tree. Links stay links (same text), hard links stay hard links,
modes, owners and times are kept. The source is removed entry by entry, each looked at again
first: one that changed since it was copied stops the removal and stays, and the same command
then copies it again (`finish_copied`).
"""

import os
import stat

from comfy_init.errors import error_for
from comfy_init.ops.migrate.manifest import file_digest
from comfy_init.problems import Problem
from comfy_init.store.files import fsync_directory, unused_name

COPYING = ".comfy-init-copying-"


def scratch_name(dst, token):
    return f"{dst}{COPYING}{token}"


def _copy_bytes(source, target, size, chunk=1 << 20):
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
            os.ftruncate(dst, size)
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


def _identity(info):
    # Not ctime: removing one name of a hard-linked file changes the inode's ctime for the others.
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def copy_file_as(source, target, mode, mtime_ns):
    """A copy of the file `source` at `target` (which must not exist) with `mode` and `mtime_ns`."""
    _copy_bytes(source, target, os.stat(source).st_size)
    os.chmod(target, mode)
    os.utime(target, ns=(mtime_ns, mtime_ns))
    fsync_directory(os.path.dirname(target))


class TreeCopy:
    """Copies `source` (a file, link or directory) to `target`, iteratively (any depth); `copied`
    lists (source path, identity at copy time) in walk order, `digests` every file's BLAKE3.
    `links` maps source paths to an earlier copy they must be hard links of (other steps)."""

    def __init__(self, source, target, links=None):
        self.source, self.target, self.links = source, target, links or {}
        self.copied, self.digests, self._inodes, self._dirs = [], {}, {}, []

    def run(self):
        pending = [(self.source, self.target)]
        while pending:
            source, target = pending.pop()
            children = self._entry(source, target)
            pending.extend(reversed(children))
        for path, info in reversed(self._dirs):  # times last: creating entries changed them
            _keep_attributes(path, info)
            fsync_directory(path)

    def _entry(self, source, target):
        info = os.lstat(source)
        self.copied.append((source, _identity(info)))
        if stat.S_ISDIR(info.st_mode):
            os.mkdir(target, 0o700)
            self._dirs.append((target, info))
            return [(os.path.join(source, name), os.path.join(target, name)) for name in sorted(os.listdir(source))]
        key = (info.st_dev, info.st_ino)
        earlier = self._inodes.get(key) if info.st_nlink > 1 else None
        if earlier is None and source in self.links and os.path.isfile(self.links[source]):
            earlier = self.links[source]
        if earlier is not None:
            os.link(earlier, target, follow_symlinks=False)
            return []
        if stat.S_ISREG(info.st_mode):
            self.digests[source] = _copy_bytes(source, target, info.st_size)
        elif stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(source), target)
        else:  # the plan refuses these; one that appeared since the plan stops the copy
            raise error_for(Problem("changed-while-preparing", "is a FIFO, socket or device file that appeared after "
                                    "the plan was made", path=source, fix="remove it, then run the same command again"))
        self._inodes[key] = target
        _keep_attributes(target, info)
        return []

    def verify(self):
        for source, digest in self.digests.items():
            copy = self.target + source[len(self.source):]
            if file_digest(copy) != digest:
                raise error_for(Problem("io-error", f"its copy at {copy} does not read back the same bytes",
                                        path=source, fix="check the target filesystem; the source is kept"))


def _changed_since_copied(path):
    return error_for(Problem("changed-while-preparing", "changed after it was copied: it is kept, and the same "
                             "command copies it again", path=path, fix="run the same command again"))


def remove_copied(source, copied):
    """Remove the `copied` entries (walk order) bottom-up, each only if it is still what was copied
    (same inode, size, times); a directory that holds anything else stops it (ENOTEMPTY)."""
    for path, identity in reversed(copied):
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            os.rmdir(path)
            continue
        if _identity(info) != identity:
            raise _changed_since_copied(path)
        os.unlink(path)
    fsync_directory(os.path.dirname(source))


def copy_across(source, target, token, links):
    """Copy `source` to `target` (absent), verify, rename into place, then remove the source."""
    remove_scratch(target, token)
    building = scratch_name(target, token)
    copy = TreeCopy(source, building, links)
    copy.run()
    copy.verify()
    os.rename(building, target)
    fsync_directory(os.path.dirname(target))
    remove_copied(source, copy.copied)


def remove_scratch(target, token):
    """Our own half-built copy (its name carries the plan's token): the source is still whole."""
    building = scratch_name(target, token)
    if os.path.lexists(building):
        for path in reversed(all_entries(building)):
            os.rmdir(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)


def _same_entry(a, b):
    first, second = os.lstat(a), os.lstat(b)
    if stat.S_IFMT(first.st_mode) != stat.S_IFMT(second.st_mode):
        return False
    if stat.S_ISLNK(first.st_mode):
        return os.readlink(a) == os.readlink(b)
    if stat.S_ISREG(first.st_mode):
        return first.st_size == second.st_size and file_digest(a) == file_digest(b)
    return True


def finish_copied(source, target, token):
    """The copy is in place and (some of) the source is still there (a kill during the removal,
    or a file changed after it was copied): every source entry left is made equal at the copy
    (copied again where it differs or is missing; what stood there is kept beside it as
    `<name>.replaced-<token>`), then removed. Nothing else is touched."""
    for path in reversed(all_entries(source)):
        copy = target + path[len(source):]
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            if not os.path.lexists(copy):
                os.mkdir(copy)
                _keep_attributes(copy, info)
            os.rmdir(path)
            continue
        if not (os.path.lexists(copy) and _same_entry(path, copy)):
            _replace_copy(path, copy, info, token)
        os.unlink(path)
    fsync_directory(os.path.dirname(source))


def _replace_copy(path, copy, info, token):
    fresh = scratch_name(copy, token)
    if os.path.lexists(fresh):
        os.unlink(fresh)
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(path), fresh)
    else:
        _copy_bytes(path, fresh, info.st_size)
        if file_digest(fresh) != file_digest(path):
            raise error_for(Problem("io-error", f"its copy at {copy} does not read back the same bytes", path=path,
                                    fix="check the target filesystem; the source is kept"))
    _keep_attributes(fresh, info)
    os.makedirs(os.path.dirname(copy), exist_ok=True)
    if os.path.lexists(copy):  # an older copy, most likely; kept beside it anyway, never overwritten
        os.rename(copy, unused_name(f"{copy}.replaced-{token}"))
    os.rename(fresh, copy)


def all_entries(root):
    """`root` and everything below it, parents before children (iterative: any depth)."""
    order, stack = [], [root]
    while stack:
        path = stack.pop()
        order.append(path)
        if os.path.isdir(path) and not os.path.islink(path):
            stack.extend(os.path.join(path, name) for name in sorted(os.listdir(path), reverse=True))
    return order
