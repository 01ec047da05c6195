"""Crash-safe writes and inter-process locks for the files of the shared data tree.

Every shared file is replaced, never rewritten in place: the new bytes go to a temporary file in the
same directory, are fsynced, and are renamed over the old file; then the directory is fsynced so the
rename itself survives a power cut. A reader therefore sees the old file or the new one, never a mix,
and needs no lock. Writers serialise with `lock_file`, a flock(2) on a sidecar file that the kernel
drops when its holder dies, however it dies.

A writer killed between creating its temporary file and the rename leaves that file behind
(`.<name>.tmp-<pid>-<random>`). Such a file is harmless: nothing reads it. `clean_stale_temps`
removes them; callers run it while holding the file's lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import time
from collections.abc import Iterator

from .errors import BusyError, ConfigError, IOFailure

# errno values with which rename(2) refuses to replace a file that is itself a mount point
# (a single-file bind mount): EBUSY from rename onto the mount point, EXDEV when source and target
# sit on different mounts.
_MOUNT_POINT_ERRNOS = (errno.EBUSY, errno.EXDEV)

# errno values with which link(2) says "not here": the backup is then copied instead.
_NO_LINK_ERRNOS = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP,
                   errno.ENOSYS, errno.EACCES)

_LOCK_POLL_SECONDS = 0.007


def write_atomic(path: str | os.PathLike, data: bytes, *, backup: str | os.PathLike | None = None) -> None:
    """Replace `path` with `data` so that a crash at any instant leaves the old or the new file.

    With `backup`, the current file (if there is one) first becomes `backup`, also atomically, so
    `backup` is always a complete earlier version. Raises ConfigError (78) when `path` is a
    single-file bind mount that cannot be replaced, IOFailure (74) for any other OS error.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    temp = None
    try:
        temp = _write_temp(path, data)
        if backup is not None:
            _keep_backup(path, os.fspath(backup))
        _replace(temp, path)
        temp = None
        _fsync_directory(directory)
        if backup is not None:
            backup_directory = os.path.dirname(os.fspath(backup)) or "."
            if not os.path.samefile(backup_directory, directory):
                _fsync_directory(backup_directory)
    except OSError as exc:
        raise _io_failure(path, "cannot write", exc) from exc
    finally:
        if temp is not None:
            _remove_quietly(temp)


def clean_stale_temps(path: str | os.PathLike) -> list[str]:
    """Remove temporary files that interrupted writes of `path` left behind; return their paths.

    Call it only while holding the lock that every writer of `path` takes: a writer makes its
    temporary file only under that lock, so while we hold it every such file belongs to a writer
    that died. (Judging by the pid in the name would be wrong: pids are reused, and other PID
    namespaces cannot be seen.)
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    pattern = re.compile(re.escape("." + os.path.basename(path)) + r"\.tmp-(\d+)-[0-9a-f]+\Z")
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if pattern.match(name) is None:
            continue
        candidate = os.path.join(directory, name)
        if _remove_quietly(candidate):
            removed.append(candidate)
    return removed


@contextlib.contextmanager
def lock_file(path: str | os.PathLike, timeout: float) -> Iterator[str]:
    """Hold an exclusive flock(2) on the sidecar file `path` for the `with` block.

    Polls without blocking until `timeout` seconds have passed, then raises BusyError (75). The
    lock file is created if needed and never deleted: deleting it would let two writers lock two
    different files. Yields the lock file's path.
    """
    path = os.fspath(path)
    deadline = time.monotonic() + timeout
    while True:
        fd = _open_lock(path)
        try:
            acquired = _try_flock(fd, path, deadline, timeout)
            if acquired and _still_the_lock_file(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        # The file was replaced under us (someone deleted and recreated it): lock the new one.
        os.close(fd)
    try:
        yield path
    finally:
        # Closing the only descriptor of this open file description releases the flock.
        os.close(fd)


def _write_temp(path: str, data: bytes) -> str:
    """Write `data` to a fresh temporary file beside `path`, fsync it, return its name."""
    mode, owner = _current_mode_and_owner(path)
    fd, temp = _create_temp(path, 0o666 if mode is None else 0o600)
    try:
        if mode is not None:
            # Keep the replaced file's permissions (and owner, when root can) so that
            # containers running as other users can go on reading and writing it.
            if owner is not None and os.geteuid() == 0:
                with contextlib.suppress(OSError):
                    os.fchown(fd, *owner)
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _remove_quietly(temp)
        raise
    os.close(fd)
    return temp


def _create_temp(path: str, mode: int) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(100):
        temp = _temp_name(path)
        try:
            return os.open(temp, flags, mode), temp
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free temporary file name", _temp_name(path))


def _keep_backup(path: str, backup: str) -> None:
    """Make `backup` a complete copy of the current `path`, atomically; no-op without `path`.

    A hard link is a free, exact snapshot because `path` itself is only ever replaced, never
    rewritten. Where links are impossible (another mount, a file system without them) the
    bytes are copied to a temporary file, fsynced and renamed.
    """
    temp = None
    try:
        temp = _temp_name(backup)
        try:
            os.link(path, temp)
        except FileNotFoundError:
            temp = None
            return
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
            temp = None
            try:
                with open(path, "rb") as current:
                    content = current.read()
            except FileNotFoundError:
                return
            temp = _write_temp(backup, content)
        _replace(temp, backup)
        temp = None
    finally:
        if temp is not None:
            _remove_quietly(temp)


def _temp_name(path: str) -> str:
    """A fresh temporary name beside `path`: `.<name>.tmp-<pid>-<random>`."""
    directory = os.path.dirname(path) or "."
    return os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _replace(source: str, target: str) -> None:
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno in _MOUNT_POINT_ERRNOS:
            directory = os.path.dirname(os.path.abspath(target))
            raise ConfigError(
                f"{target}: cannot replace the file ({os.strerror(exc.errno)}): it is most likely a"
                " single-file bind mount, and such a file can only be rewritten in place, which is"
                " not crash-safe",
                f"bind-mount its directory {directory}/ instead of the file itself (for example"
                f" `-v /host/meta:{directory}` rather than `-v /host/{os.path.basename(target)}:{target}`)",
            ) from exc
        raise


def _fsync_directory(directory: str) -> None:
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
        st = os.stat(path)
    except FileNotFoundError:
        return None, None
    return st.st_mode & 0o7777, (st.st_uid, st.st_gid)


def _open_lock(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except PermissionError as denied:
        # flock needs no write access: a lock file that another user created still locks.
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            raise _io_failure(path, "cannot open the lock file", denied) from denied
    except OSError as exc:
        raise _io_failure(path, "cannot open the lock file", exc) from exc


def _try_flock(fd: int, path: str, deadline: float, timeout: float) -> bool:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError as exc:
            raise _io_failure(path, "cannot lock", exc) from exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BusyError(
                f"{path}: another comfy-init still holds this lock after {timeout:g} s of waiting",
                "wait for it to finish and try again; if no comfy-init is running, there is nothing"
                " to delete: a flock lock vanishes with the process that holds it, so look for a"
                f" hung process that still has the file open (`fuser -v {path}` on the host)",
            )
        time.sleep(min(_LOCK_POLL_SECONDS, remaining))


def _still_the_lock_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def _remove_quietly(path: str) -> bool:
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def _io_failure(path: str, what: str, exc: OSError) -> IOFailure:
    detail = os.strerror(exc.errno) if exc.errno else str(exc)
    where = exc.filename if exc.filename else path
    if os.fspath(where) != path:
        return IOFailure(f"{path}: {what}: {detail} ({where})")
    return IOFailure(f"{path}: {what}: {detail}")
