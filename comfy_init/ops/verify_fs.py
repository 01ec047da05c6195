"""`comfy-init verify-fs`: which promises the data tree's filesystem keeps, tried, not assumed.

comfy-init's claims rest on flock (one lock per instance, held by its running comfy-init) and on
a lease (a heartbeat in the registry). A network filesystem may keep flock within one mount and
not across mounts (FUSE filesystems such as sshfs: the kernel keeps the lock locally), or not at
all; a second process is the only honest test, and a second mount of the same directory the only
test of what another host would see. Everything is tried in a scratch directory that is removed.
"""

import errno
import fcntl
import os
import shutil
import subprocess
import sys
import time

from comfy_init.problems import Problem
from comfy_init.results import Result
from comfy_init.store.files import fsync_directory

# A second process that tries the lock at argv[1]: prints "held" when it is excluded.
_TRY_LOCK = ("import fcntl, os, sys\n"
             "fd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n    print('free')\n"
             "except BlockingIOError:\n    print('held')\n")
# The promises a tree needs whatever the claim mode: without them no write of comfy-init is safe.
REQUIRED = ("atomic-rename", "exclusive-create", "fsync-directory", "symlinks", "directory-rename")


class _Scratch:
    def __init__(self, directory):
        self.path = os.path.join(directory, f".comfy-init-verify-fs-{os.getpid()}-{os.urandom(4).hex()}")

    def __enter__(self):
        os.mkdir(self.path)
        return self.path

    def __exit__(self, *_):
        shutil.rmtree(self.path)  # our own folder; rmtree removes links, never what they point to


def _other_process_sees(path):
    done = subprocess.run([sys.executable, "-c", _TRY_LOCK, path], capture_output=True, text=True, timeout=30)
    return done.stdout.strip() or f"failed: {done.stderr.strip()[-200:]}"


def _flock(scratch, seen_from):
    """Hold a flock on a file in `scratch`; ask another process to take it through `seen_from`."""
    path = os.path.join(scratch, "lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        answer = _other_process_sees(os.path.join(seen_from, "lock"))
    except OSError as error:
        return False, f"flock itself fails: {os.strerror(error.errno)}"
    finally:
        os.close(fd)
    if answer == "held":
        return True, "a second process was excluded while the first held the lock"
    return False, f"a second process took the lock the first held ({answer})"


def _atomic_rename(scratch):
    path, temporary = os.path.join(scratch, "file"), os.path.join(scratch, "file.new")
    for name, data in ((path, b"old"), (temporary, b"new")):
        with open(name, "wb") as file:
            file.write(data)
            os.fsync(file.fileno())
    os.rename(temporary, path)
    with open(path, "rb") as file:
        ok = file.read() == b"new" and not os.path.lexists(temporary)
    return ok, "rename over an existing file replaced it whole" if ok else "the renamed file reads back wrong"


def _exclusive_create(scratch, seen_from, name="exclusive"):
    """O_EXCL creates a name once: a second create of it (through `seen_from`) must fail."""
    os.close(os.open(os.path.join(scratch, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    try:
        os.close(os.open(os.path.join(seen_from, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return True, "a second O_EXCL create of one name failed with EEXIST"
    return False, "a second O_EXCL create of one name succeeded"


def _hard_links(scratch):
    source, link = os.path.join(scratch, "file"), os.path.join(scratch, "hard-link")
    try:
        os.link(source, link)
    except OSError as error:
        return False, f"link() fails: {os.strerror(error.errno)}"
    if os.stat(link).st_ino != os.stat(source).st_ino:
        return False, "link() made a name, but the two names show different inodes (inode numbers are not kept)"
    return True, "link() made a second name for one file"


def _fsync_directory(scratch):
    try:
        fsync_directory(scratch)
    except Exception as error:  # the store raises its own error type carrying the errno
        return False, f"fsync of a directory fails: {error}"
    return True, "fsync of a directory works"


def _symlinks(scratch):
    """A link of the tree's own shape (instances/<id>/models -> ../../shared/models): some mounts
    keep links inside one folder but refuse any with `..` (Debian's sshfs: contain_symlinks)."""
    shared, instance = os.path.join(scratch, "shared", "models"), os.path.join(scratch, "instances", "x")
    os.makedirs(shared)
    os.makedirs(instance)
    link = os.path.join(instance, "models")
    os.symlink(os.path.join("..", "..", "shared", "models"), link)
    try:
        ok = os.readlink(link) == os.path.join("..", "..", "shared", "models") and \
            os.path.realpath(link) == os.path.realpath(shared)
    except OSError as error:
        return False, (f"a link to ../../shared/models is made but cannot be read back ({error.strerror}); "
                       "sshfs: mount with -o no_contain_symlinks")
    return ok, "a relative link (../../shared/models) reads back and resolves" if ok else "a link reads back wrong"


def _directory_rename(scratch):
    """A directory replaces an empty one and is refused by a full one (migrate relies on both)."""
    full, empty, moving = (os.path.join(scratch, name) for name in ("full", "empty", "moving"))
    for path in (full, empty, moving):
        os.mkdir(path)
    open(os.path.join(full, "x"), "wb").close()
    os.rename(moving, empty)
    os.mkdir(moving)
    try:
        os.rename(moving, full)
    except OSError as error:
        if os.path.exists(os.path.join(full, "x")):  # refused, whatever errno says (sftp: EPERM)
            return True, f"a directory replaced an empty one; a full one refused it ({errno.errorcode.get(error.errno)})"
    return False, "a directory rename replaced a directory that was not empty"


def _same_directory(directory, other, timeout=5.0):
    token = f".comfy-init-verify-fs-probe-{os.urandom(6).hex()}"
    open(os.path.join(directory, token), "wb").close()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.lexists(os.path.join(other, token)):
                return True
            time.sleep(0.1)
        return False
    finally:
        os.unlink(os.path.join(directory, token))


def filesystem_type(path):
    """The type of the mount `path` is on, from /proc/self/mounts (the longest mount point)."""
    real, best = os.path.realpath(path), ("", "unknown")
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                point = fields[1].replace("\\040", " ")
                if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
                    best = (point, fields[2])
    except OSError:
        pass
    return best[1]


def _checks(directory, other):
    with _Scratch(directory) as scratch:
        seen_from = os.path.join(other, os.path.basename(scratch)) if other else scratch
        found = {"flock": _flock(scratch, scratch), "atomic-rename": _atomic_rename(scratch),
                 "exclusive-create": _exclusive_create(scratch, scratch), "hard-links": _hard_links(scratch),
                 "fsync-directory": _fsync_directory(scratch), "symlinks": _symlinks(scratch),
                 "directory-rename": _directory_rename(scratch)}
        if other:
            found["flock-across-mounts"] = _flock(scratch, seen_from)
            found["exclusive-create-across-mounts"] = _exclusive_create(scratch, seen_from, "exclusive-across")
    return found


def _claim_mode(found, other):
    if not found["flock"][0]:
        return "lease-only", "flock does not exclude even on one mount: only the lease keeps instances apart"
    if other is None:
        return "locks+lease", ("flock excludes on this mount; run again with --other <the same directory through "
                               "another mount> to learn whether it reaches other hosts")
    if found["flock-across-mounts"][0]:
        return "locks+lease", "flock excludes across mounts: locks and the lease both keep instances apart"
    return "lease-only", ("flock does not reach across mounts: claim files (O_EXCL / link) and the lease keep hosts "
                          "apart; a free lock proves nothing about a holder on another mount")


def verify_fs(directory, other=None):
    directory = os.path.abspath(directory)
    problems = []
    if not os.path.isdir(directory):
        return Result("verify-fs", None, problems=[Problem("missing-path", "is not a directory", path=directory,
                                                               fix="pass the data directory (or a folder on its filesystem)")])
    if other is not None and not (os.path.isdir(other) and _same_directory(directory, other)):
        return Result("verify-fs", None, problems=[Problem(
            "usage", f"does not show what {directory} holds (a file written there did not appear)", path=other,
            fix="pass --other the SAME directory seen through another mount")])
    try:
        found = _checks(directory, other)
    except OSError as error:
        return Result("verify-fs", None, problems=[Problem(
            "not-writable" if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else "io-error",
            f"cannot try the filesystem here: {os.strerror(error.errno)}", path=directory,
            fix="run verify-fs as a user that can write there")])
    mode, why = _claim_mode(found, other)
    checks = {name: {"ok": ok, "detail": detail} for name, (ok, detail) in found.items()}
    kind = filesystem_type(directory)
    lines = [f"{directory}: {kind}"] + [f"  {'ok  ' if ok else 'FAIL'}  {name}: {detail}"
                                        for name, (ok, detail) in found.items()]
    lines.append(f"claim mode: {mode}: {why}")
    problems = [Problem("failed", f"{name}: {found[name][1]}", path=directory,
                        fix="comfy-init cannot keep its files whole on this filesystem: put the data tree on one "
                            "that keeps this promise (docs/scale-out.md)")
                for name in REQUIRED if not found[name][0]]
    return Result("verify-fs", {"directory": directory, "other": other, "filesystem": kind, "checks": checks,
                                "claim_mode": mode, "why": why}, lines, problems)
