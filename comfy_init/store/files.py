"""Files of the shared data tree: crash-safe replacement, safe opening, fresh names.

Every shared file is replaced, never rewritten in place: the new bytes go to a temporary file in the
same directory, are fsynced, and are renamed over the old file; then the directory is fsynced so the
rename itself survives a power cut. A reader therefore sees the old file or the new one, never a mix,
and needs no lock. Writers serialise with comfy_init.store.locks.

Anyone who can write meta/ could plant a link or a FIFO where comfy-init (often root) opens a file.
So every open here is `open_regular`: O_NOFOLLOW (a link at the last component is refused, never
followed), O_NONBLOCK (a FIFO cannot hang us), and an fstat that refuses anything but a regular
file. Files are created with O_EXCL, which never follows a link either.

A writer killed between creating its temporary file and the rename leaves that file behind
(`.<name>.tmp-<pid>-<random>`). Such a file is harmless: nothing reads it. `clean_stale_temps`
removes them; callers run it while holding the file's lock. A writer that gives a `tag` (its lock
domain, see comfy_init.store.locks) names its temporary files `.<name>.tmp-<pid>-<tag><random>`,
so that on a share whose flock does not reach across mounts the cleaner removes at once only the
temporary files of writers its own flock excluded, and another mount's only once they are old.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import time

from comfy_init.errors import ConfigError, DataError, IOFailure
from comfy_init.problems import Problem

# errno values with which rename(2) refuses to replace a file that is itself a mount point
# (a single-file bind mount): EBUSY from rename onto the mount point, EXDEV when source and target
# sit on different mounts.
_MOUNT_POINT_ERRNOS = (errno.EBUSY, errno.EXDEV)

# errno values with which link(2) says "not here": the bytes are then copied instead.
NO_LINK_ERRNOS = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP,
                   errno.ENOSYS, errno.EACCES)

# A temporary file of a writer in another lock domain (another mount or host) is removed only once
# it is this old by its mtime: a live write takes milliseconds, so only a clock skew of this much
# between us and the file server could make us remove a live one.
FOREIGN_TEMP_AGE = 15 * 60

_KIND_NAMES = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


# -- opening --------------------------------------------------------------------------------------

def not_regular(path, what):
    return DataError(Problem(
        "not-a-regular-file", f"is {what}, not a regular file", path=path,
        fix="comfy-init only reads and locks regular files here, and never follows a link in meta/; "
            f"move it away (for example to {os.path.basename(path)}.moved-aside) and try again"))


def open_regular(path, flags, mode=0o666):
    """os.open for a regular file that is never a link, FIFO, socket, device or directory.

    Returns the descriptor (close-on-exec); raises FileNotFoundError when nothing is there (and
    O_CREAT is not given), DataError (65) for anything but a regular file, OSError otherwise.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise not_regular(path, f"a symbolic link (to {_readlink(path)!r})") from None
        if exc.errno in (errno.ENXIO, errno.EISDIR, errno.ENODEV, errno.EOPNOTSUPP):
            raise not_regular(path, _kind_name(path)) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise not_regular(path, _kind_name(path, info))
    os.set_blocking(fd, True)
    return fd


def refuse_non_regular(path):
    """Raise DataError (65) when something other than a regular file stands at `path` (a missing
    path is fine). Only looks (lstat): for checks that must come before anything is created."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise io_failure(path, "cannot look at", exc) from None
    if stat.S_ISLNK(info.st_mode):
        raise not_regular(path, f"a symbolic link (to {_readlink(path)!r})")
    if not stat.S_ISREG(info.st_mode):
        raise not_regular(path, _kind_name(path, info))


def read_regular(path):
    """The bytes of the regular file `path`, or None when it does not exist. DataError (65) for a
    link, FIFO, socket, device or directory; IOFailure (74) when it cannot be read."""
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise io_failure(path, "cannot read", exc) from None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise io_failure(path, "cannot read", exc) from None
    finally:
        os.close(fd)


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _kind_name(path, info=None):
    try:
        info = info or os.lstat(path)
    except OSError:
        return "not a regular file"
    for test, name in _KIND_NAMES:
        if test(info.st_mode):
            return name
    return "not a regular file"


# -- writing --------------------------------------------------------------------------------------

def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def create_new(path, data, mode=0o644):
    """Create `path` holding `data`, fsynced; FileExistsError when anything (a link too) is there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def publish_new(path, data, tag=None, durable=True):
    """Make `path` appear holding all of `data` at once, or raise FileExistsError when anything
    stands there: written (and fsynced, with its directory, when `durable`) under a temporary
    name, then hard-linked into place (link() never replaces). A reader never sees it empty or
    half-written. Where hard links are refused, an O_EXCL create is the fallback (a reader may
    then see it while it is written)."""
    temp = _write_temp(path, data, tag, durable=durable)
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in NO_LINK_ERRNOS:
            raise
        create_new(path, data)
    finally:
        remove_quietly(temp)
    if durable:
        fsync_directory(os.path.dirname(path) or ".")


def unused_name(path, exists=os.path.lexists):
    """`path`, or `path.1`, `path.2`, ...: the first name nothing stands at, so nothing is overwritten."""
    candidate, number = path, 0
    while exists(candidate):
        number += 1
        candidate = f"{path}.{number}"
    return candidate


def keep_copy_as_new_name(source, base, data):
    """Keep the file `source` (whose bytes are `data`) under `base`, or `base.1`, ... : a hard
    link where the filesystem allows, else a copy. Never overwrites anything; returns the name."""
    for _ in range(1000):
        name = unused_name(base)
        try:
            try:
                os.link(source, name)
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in NO_LINK_ERRNOS:
                    raise
                create_new(name, data)
            return name
        except FileExistsError:
            continue  # someone took that name between our look and now
    raise OSError(errno.EEXIST, "no free name", base)


def write_atomic(path: str | os.PathLike, data: bytes, *, backup: str | os.PathLike | None = None,
                 tag: str | None = None) -> None:
    """Replace `path` with `data` so that a crash at any instant leaves the old or the new file.

    With `backup`, the current file (if there is one) first becomes `backup`, also atomically, so
    `backup` is always a complete earlier version. `tag` (8 hex digits) goes into the temporary
    files' names (see `clean_stale_temps`). Raises ConfigError (78) when `path` is a single-file
    bind mount that cannot be replaced, IOFailure (74) for any other OS error.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    temp = None
    try:
        temp = _write_temp(path, data, tag)
        if backup is not None:
            _keep_backup(path, os.fspath(backup), tag)
        _replace(temp, path)
        temp = None
        fsync_directory(directory)
        if backup is not None:
            backup_directory = os.path.dirname(os.fspath(backup)) or "."
            if not os.path.samefile(backup_directory, directory):
                fsync_directory(backup_directory)
    except OSError as exc:
        raise io_failure(path, "cannot write", exc) from exc
    finally:
        if temp is not None:
            remove_quietly(temp)


def clean_stale_temps(path: str | os.PathLike, tag: str | None = None) -> list[str]:
    """Remove temporary files that interrupted writes of `path` left behind; return their paths.

    Call it only while holding the lock that every writer of `path` takes: a writer makes its
    temporary file only under that lock, so while we hold it every such file belongs to a writer
    that died. (Judging by the pid in the name would be wrong: pids are reused, and other PID
    namespaces cannot be seen.) That holds only for writers our lock excluded: a file whose name
    carries another writer's `tag` (another lock domain: a mount or host our flock does not reach)
    is removed only once it is FOREIGN_TEMP_AGE old. Names without a tag (older comfy-init, other
    writers) are judged as before.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    pattern = re.compile(re.escape("." + os.path.basename(path)) + r"\.tmp-(\d+)-([0-9a-f]+)\Z")
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        if match is None:
            continue
        candidate = os.path.join(directory, name)
        if _foreign_and_young(candidate, match[2], tag):
            continue
        if remove_quietly(candidate):
            removed.append(candidate)
    return removed


def _foreign_and_young(candidate, suffix, tag):
    """Whether a temporary file was written by a writer in another lock domain, recently."""
    if tag is None or len(suffix) != len(tag) + 8 or suffix.startswith(tag):
        return False
    try:
        age = time.time() - os.lstat(candidate).st_mtime
    except OSError:
        return True  # gone already, or cannot be looked at: leave it
    return age < FOREIGN_TEMP_AGE


def _write_temp(path: str, data: bytes, tag: str | None = None, durable: bool = True) -> str:
    """Write `data` to a fresh temporary file beside `path`, fsync it (when `durable`), return its name."""
    mode, owner = _current_mode_and_owner(path)
    for _ in range(100):
        temp = temp_name(path, tag)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         0o666 if mode is None else 0o600)
            break
        except FileExistsError:
            continue
    else:
        raise OSError(errno.EEXIST, "no free temporary file name", temp_name(path))
    try:
        if mode is not None:
            # Keep the replaced file's permissions (and owner, when root can) so that
            # containers running as other users can go on reading and writing it.
            if owner is not None and os.geteuid() == 0:
                with contextlib.suppress(OSError):
                    os.fchown(fd, *owner)
            os.fchmod(fd, mode)
        write_all(fd, data)
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        remove_quietly(temp)
        raise
    os.close(fd)
    return temp


def _keep_backup(path: str, backup: str, tag: str | None = None) -> None:
    """Make `backup` a complete copy of the current `path`, atomically; no-op without `path`.

    A hard link is a free, exact snapshot because `path` itself is only ever replaced, never
    rewritten. Where links are impossible (another mount, a file system without them) the
    bytes are copied to a temporary file, fsynced and renamed.
    """
    temp = temp_name(backup, tag)
    try:
        try:
            os.link(path, temp)
        except FileNotFoundError:
            temp = None
            return
        except OSError as exc:
            if exc.errno not in NO_LINK_ERRNOS:
                raise
            content = read_regular(path)
            if content is None:
                temp = None
                return
            temp = _write_temp(backup, content, tag)
        _replace(temp, backup)
        # A writer killed between this rename and the next leaves `backup` and `path` as one inode;
        # renaming a hard link onto its twin is then a no-op that keeps `temp`: remove it.
    finally:
        if temp is not None:
            remove_quietly(temp)


def temp_name(path: str, tag: str | None = None) -> str:
    """A fresh temporary name beside `path`: `.<name>.tmp-<pid>-[<tag>]<random>`."""
    directory = os.path.dirname(path) or "."
    # os.urandom, not secrets: the same bytes, without ~9 ms of imports on every container start.
    return os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}-{tag or ''}{os.urandom(4).hex()}")


def _replace(source: str, target: str) -> None:
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno in _MOUNT_POINT_ERRNOS:
            directory = os.path.dirname(os.path.abspath(target))
            raise ConfigError(Problem(
                "single-file-mount",
                f"cannot replace the file ({os.strerror(exc.errno)}): it is most likely a single-file "
                "bind mount, and such a file can only be rewritten in place, which is not crash-safe",
                path=target,
                fix=f"bind-mount its directory {directory}/ instead of the file itself (for example "
                    f"`-v /host/meta:{directory}` rather than `-v /host/{os.path.basename(target)}:{target}`)",
            )) from exc
        raise


def fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems cannot fsync a directory; the rename is done all the same.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def _current_mode_and_owner(path: str) -> tuple[int | None, tuple[int, int] | None]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None
    return st.st_mode & 0o7777, (st.st_uid, st.st_gid)


def remove_quietly(path: str) -> bool:
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def io_failure(path: str, what: str, exc: OSError) -> IOFailure:
    detail = os.strerror(exc.errno) if exc.errno else str(exc)
    where = exc.filename if exc.filename else path
    suffix = f" ({where})" if os.fspath(where) != path else ""
    return IOFailure(Problem("io-error", f"{what}: {detail}{suffix}", path=path))
