"""A short-held write lock that also excludes across mounts and hosts whose flock does not.

The registry is read, changed and replaced by every comfy-init on a data tree. Under flock alone,
two mounts of one share (sshfs, NFS without lockd, some SMB) each grant the lock, and two writers'
read-modify-writes lose each other's updates. So a writer takes, after the flock, an owner file
`<file>.xlock` that only one writer can create: it is written under a temporary name and
hard-linked into place (link() never replaces, and the file server decides it: the same on every
mount). Where hard links are refused, an O_EXCL create decides instead.

The owner file names its writer's lock domain (comfy_init.store.locks.domain_of). A writer left it
behind when it died inside its write. Who holds the flock and finds an owner file of its own domain
knows that writer gone (it held the same flock), and breaks it at once. An owner file of another
domain is broken only after it has stood unchanged for STALE_AFTER seconds on the waiter's own
monotonic clock: a write takes milliseconds. Breaking is a rename to a unique name followed by a
look at what was moved: only one waiter can move a given file, and one that moved a newer owner
file by mistake links it back.
"""

import contextlib
import json
import os
import time
import zlib

from comfy_init.errors import BusyError, DataError, IOFailure
from comfy_init.problems import Problem
from comfy_init.store import locks
from comfy_init.store.files import io_failure, publish_new, read_regular, remove_quietly

STALE_AFTER = 5.0
POLL_FIRST, POLL_MOST = 0.002, 0.05


def tag(domain):
    """8 hex digits for a lock domain, for temporary file names (see store.files)."""
    return f"{zlib.crc32((domain or '').encode()):08x}"


@contextlib.contextmanager
def hold(lock_path, owner_path, timeout, clock=time.monotonic):
    """Hold the flock on `lock_path` and the owner file `owner_path` for the `with` block;
    BusyError (75) after `timeout` seconds of waiting. Yields our lock domain."""
    deadline = clock() + timeout
    with locks.hold(lock_path, timeout):
        domain = locks.domain_of(lock_path)
        token = _take_owner(owner_path, domain, deadline, clock)
        try:
            yield domain
        finally:
            _give_back(owner_path, token)


def _take_owner(owner_path, domain, deadline, clock):
    token = os.urandom(8).hex()
    body = json.dumps({"token": token, "domain": domain, "pid": os.getpid()}).encode()
    seen, seen_since, pause = None, clock(), POLL_FIRST
    while True:
        try:
            # Not fsynced: after a power cut the owner file is of another boot, and so another
            # domain, and is broken after STALE_AFTER.
            publish_new(owner_path, body, tag(domain), durable=False)
            return token
        except FileExistsError:
            pass
        except OSError as exc:
            raise io_failure(owner_path, "cannot create the write lock", exc) from None
        current = _read(owner_path)
        if current is None:
            continue  # given back between our try and our look
        if current != seen:
            seen, seen_since = current, clock()
        if _owner_domain(current) == domain or clock() - seen_since >= STALE_AFTER:
            _break(owner_path, current)
            continue
        if clock() >= deadline:
            raise _timeout(owner_path, current)
        time.sleep(pause)
        pause = min(pause * 2, POLL_MOST)


def _read(path):
    """Its bytes, None when it is gone; DataError (65) for a link or FIFO planted there."""
    return read_regular(path)


def _owner_domain(data):
    try:
        return json.loads(data).get("domain")
    except (ValueError, AttributeError):
        return None  # being written (O_EXCL fallback), or damaged: only its age can tell


def _break(owner_path, judged):
    """Move the owner file `judged` away; if what we moved is not it, link it back."""
    moved = f"{owner_path}.broken-{os.urandom(6).hex()}"
    try:
        os.rename(owner_path, moved)
    except OSError:
        return  # someone else moved it first
    try:
        if _read(moved) != judged:
            with contextlib.suppress(OSError):
                os.link(moved, owner_path)
    finally:
        remove_quietly(moved)


def _give_back(owner_path, token):
    try:
        current = _read(owner_path)
        ours = current is not None and json.loads(current).get("token") == token
    except (ValueError, AttributeError, DataError, IOFailure):
        ours = False
    if ours:
        remove_quietly(owner_path)


def _timeout(owner_path, current):
    try:
        holder = json.loads(current)
        who = f" (pid {holder.get('pid')}, lock domain {holder.get('domain')})"
    except (ValueError, AttributeError):
        who = ""
    return BusyError(Problem(
        "lock-timeout", f"another comfy-init still holds this write lock{who}", path=owner_path,
        fix="wait for it to finish and try again; a writer that died leaves this file behind, and the "
            f"next writer removes it once it has stood unchanged for {STALE_AFTER:g} s"))
