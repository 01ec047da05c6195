"""The one lock primitive: an exclusive flock(2) on a sidecar lock file.

The kernel drops a flock the instant its holder dies, however it dies, so a lock never needs
cleaning up, and a free lock on the same host proves its last holder gone. Lock files are created
if needed and never deleted: deleting one would let two processes lock two different files. They
are opened with comfy_init.store.files.open_regular: never through a planted link or FIFO.

`try_lock` takes the lock without waiting (a claim, held for a process's life); `hold` waits up to
a timeout for it (a registry write, held for milliseconds).

A flock only excludes the processes that lock the same inode in the same kernel: on a share whose
flock does not reach across mounts or hosts (sshfs, NFS without lockd, some SMB), two mounts each
grant it. `domain` names where a lock excludes (boot id, device and inode as the holder sees the
file); a free lock proves a holder gone only to a process in the holder's own domain.
"""

import contextlib
import errno
import fcntl
import os
import time

from comfy_init.errors import BusyError
from comfy_init.problems import Problem
from comfy_init.store.files import io_failure, open_regular
from comfy_init.store.hostid import boot_id

POLL_SECONDS = 0.007


class Lock:
    """A held flock; `release()` (or closing the process) gives it back."""

    __slots__ = ("path", "_fd")

    def __init__(self, path, fd):
        self.path = path
        self._fd = fd

    @property
    def held(self):
        return self._fd is not None

    @property
    def domain(self):
        """Where this lock excludes: see `domain_of`."""
        return _domain(os.fstat(self._fd))

    def release(self):
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor of this open file releases the flock
            self._fd = None


def try_lock(path):
    """Take the flock on `path` if it is free: a Lock, or None when another process holds it.

    Raises DataError (65) when `path` is not a regular file, IOFailure (74) when it cannot be
    opened or locked.
    """
    path = os.fspath(path)
    while True:
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            os.close(fd)
            raise io_failure(path, "cannot lock", exc) from None
        if _still_the_lock_file(fd, path):
            return Lock(path, fd)
        # The file was replaced under us (someone deleted and recreated it): lock the new one.
        os.close(fd)


def domain_of(path):
    """`<boot id>:<device>:<inode>` of the lock file `path` as this process sees it (None when it is
    missing): two processes with the same domain lock one inode in one kernel, so their flocks
    exclude each other. Two mounts of one share have two devices, two hosts two boot ids."""
    try:
        return _domain(os.stat(path))
    except OSError:
        return None


def _domain(info):
    return f"{boot_id()}:{info.st_dev}:{info.st_ino}"


def held_elsewhere(path):
    """Whether another process holds the flock on `path` right now. Creates nothing: a missing lock
    file is a free lock. For looking (instance list), never for deciding a claim."""
    path = os.fspath(path)
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise io_failure(path, "cannot open the lock file", exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the flock we may just have taken
    return False


def holder_pid(path):
    """The pid, as this process sees it, of whoever holds the flock on `path`, from /proc/locks
    (which the kernel shows in the reader's PID namespace: a container's PID 1 is its host pid
    here); None when it cannot be told."""
    try:
        info = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as table:
            lines = table.read().splitlines()
    except OSError:
        return None
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted and fields[4].isdigit():
            pid = int(fields[4])
            return pid if pid > 0 else None
    return None


@contextlib.contextmanager
def hold(path, timeout):
    """Hold the flock on `path` for the `with` block, waiting up to `timeout` seconds for it;
    BusyError (75) after that. Yields the lock file's path."""
    path = os.fspath(path)
    deadline = time.monotonic() + timeout
    while (lock := try_lock(path)) is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BusyError(Problem(
                "lock-timeout", f"another comfy-init still holds this lock after {timeout:g} s of waiting",
                path=path,
                fix="wait for it to finish and try again; if no comfy-init is running, there is nothing "
                    "to delete: a flock lock vanishes with the process that holds it, so look for a hung "
                    f"process that still has the file open (`fuser -v {path}` on the host)"))
        time.sleep(min(POLL_SECONDS, remaining))
    try:
        yield path
    finally:
        lock.release()


def _open(path):
    try:
        return open_regular(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError as denied:
        # flock needs no write access: a lock file that another user created still locks.
        try:
            return open_regular(path, os.O_RDONLY)
        except OSError:
            raise io_failure(path, "cannot open the lock file", denied) from None
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise io_failure(path, "cannot open the lock file (its directory is missing)", exc) from None
        raise io_failure(path, "cannot open the lock file", exc) from None


def _still_the_lock_file(fd, path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)
