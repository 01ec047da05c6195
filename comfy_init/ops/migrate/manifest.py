"""Manifests: what a tree holds, entry by entry, so a migration can prove nothing was lost.

An entry is (type, mode, size, mtime_ns, inode, links, link text, digest): digest is the BLAKE3
of a small file's content, None for a large one (size and mtime stand for it) and UNREADABLE for
a file this user cannot read (a rename still moves it; a copy cannot). The walk lstats every entry once (os.scandir) and never
follows a link; it is the one walk a migration pays before it moves and once after.
"""

import os
import stat

SMALL_FILE = 64 * 1024
UNREADABLE = "unreadable"
FILE, DIRECTORY, LINK, OTHER = "f", "d", "l", "o"
TYPE, MODE, SIZE, MTIME, INODE, NLINK, TARGET, DIGEST = range(8)


def kind_of(mode):
    return _type(mode)


def _type(mode):
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIRECTORY
    if stat.S_ISLNK(mode):
        return LINK
    return OTHER


def _readable(info, uid):
    if uid == 0:
        return True
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IRUSR)
    if info.st_gid in os.getgroups() or info.st_gid == os.getegid():
        return bool(info.st_mode & stat.S_IRGRP)
    return bool(info.st_mode & stat.S_IROTH)


def file_digest(path, chunk=1 << 20):
    """BLAKE3 of the file at `path` (not following a link), hex."""
    import blake3

    hasher = blake3.blake3()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        while True:
            data = os.read(fd, chunk)
            if not data:
                return hasher.hexdigest()
            hasher.update(data)
    finally:
        os.close(fd)


def entry_of(path, info, hash_small=True, uid=None):
    kind = FILE if stat.S_ISREG(info.st_mode) else _type(info.st_mode)
    target = os.readlink(path) if kind == LINK else None
    digest = None
    if kind == FILE and not _readable(info, os.geteuid() if uid is None else uid):
        digest = UNREADABLE
    elif kind == FILE and hash_small and info.st_size <= SMALL_FILE:
        digest = file_digest(path)
    return [kind, stat.S_IMODE(info.st_mode), info.st_size if kind != DIRECTORY else 0,
            info.st_mtime_ns if kind != DIRECTORY else 0, info.st_ino, info.st_nlink, target, digest]


class Walk:
    """Walks trees into one manifest (path -> entry), counting for a progress callback; `foreign`
    collects directories on another filesystem than their walk's root (nested mount points)."""

    def __init__(self, progress=None, hash_small=True):
        self.entries, self.foreign, self.failures = {}, [], []
        self.progress, self.hash_small = progress, hash_small
        self.totals = {}  # root -> (entries, bytes of its files)
        self.uid = os.geteuid()  # once a walk, not once an entry

    def tree(self, root):
        info = os.lstat(root)
        before = len(self.entries)
        self.entries[root] = entry_of(root, info, self.hash_small)
        if stat.S_ISDIR(info.st_mode):
            device, pending = info.st_dev, [root]
            while pending:
                self._directory(pending.pop(), device, pending)
        added = list(self.entries.values())[before:]
        self.totals[root] = (len(added), sum(entry[SIZE] for entry in added if entry[TYPE] == FILE))

    def _directory(self, directory, device, pending):
        try:
            listing = os.scandir(directory)
        except OSError as error:
            self.failures.append((directory, error.strerror))
            return
        entries, uid, hash_small, is_regular = self.entries, self.uid, self.hash_small, stat.S_ISREG
        with listing:
            for item in listing:
                info = item.stat(follow_symlinks=False)
                mode = info.st_mode
                if is_regular(mode) and info.st_size > SMALL_FILE and (uid == 0 or _readable(info, uid)):
                    # The common case (a model), inline: nothing to read, no call per entry.
                    entries[item.path] = [FILE, mode & 0o7777, info.st_size, info.st_mtime_ns, info.st_ino,
                                          info.st_nlink, None, None]
                    continue
                try:
                    entries[item.path] = entry_of(item.path, info, hash_small, uid)
                except OSError as error:
                    self.failures.append((item.path, error.strerror))
                    continue
                if stat.S_ISDIR(mode):
                    if info.st_dev != device:
                        self.foreign.append(item.path)
                    else:
                        pending.append(item.path)
        if self.progress is not None:
            self.progress(len(self.entries))


def lexical_target(link_path, text):
    """Where a link's text points, without asking the filesystem (what rename keeps or breaks)."""
    if os.path.isabs(text):
        return os.path.normpath(text)
    return os.path.normpath(os.path.join(os.path.dirname(link_path), text))


def differences(old, new, same_inode):
    """(lost, changed): what says this is not the same file, and what a writer may have changed
    since (mode, size, time, content). Both empty when they are the same file, untouched."""
    if old[TYPE] != new[TYPE]:
        return [f"was a {type_name(old[TYPE])}, is a {type_name(new[TYPE])}"], []
    if same_inode and old[INODE] != new[INODE] and old[TYPE] not in (DIRECTORY, LINK):
        return ["it is another file (its inode changed)"], []
    changed = []
    if old[MODE] != new[MODE] and old[TYPE] != LINK:
        changed.append(f"mode {old[MODE]:o} became {new[MODE]:o}")
    if old[TYPE] == FILE:
        if old[SIZE] != new[SIZE]:
            changed.append(f"size {old[SIZE]} became {new[SIZE]}")
        if old[MTIME] != new[MTIME]:
            changed.append("its modification time changed")
        if old[DIGEST] not in (None, UNREADABLE) and new[DIGEST] not in (None, UNREADABLE, old[DIGEST]):
            changed.append("its content changed")
    return [], changed


def type_name(kind):
    return {FILE: "file", DIRECTORY: "directory", LINK: "link", OTHER: "special file"}[kind]
