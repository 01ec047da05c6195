"""Instance claims: at most one running ComfyUI per instance id, across containers and hosts.

A claim is three things at once:

- a claim file `meta/claims/<id>.<generation>.claim` (comfy_init.store.claimfiles) that only one
  contender can create, on any mount or host of the share: this decides who holds the instance,
  and does not depend on flock reaching across mounts. A takeover creates the next generation; a
  holder that finds a higher generation than its own at a renewal has been taken over (fencing).
- an flock on `meta/locks/<id>.lock`, held by comfy-init for its whole life. The kernel drops it
  the instant the holder dies (kill -9, OOM, container killed), so in the same lock domain (the
  same kernel locking the same inode: comfy_init.store.locks.domain_of) a dead holder is
  recognised at once: same domain + lock free = holder gone. Two mounts of one share are two
  domains even on one host: there the flock proves nothing.
- a record in the registry (`claims.<id>`): the view that `registry show`, `status` and `check`
  read, the same record as the claim file, renewed every lease/3 seconds with a heartbeat counter.
  A holder elsewhere (another host or mount, or one frozen on this host) is taken over only after
  the claimant has watched the heartbeat stand still for a whole lease on its OWN monotonic clock,
  so clocks of different hosts never matter. A holder that wakes up after losing its claim sees a
  higher generation or a foreign token at its next renewal, writes nothing, and stops.

The claim also carries the port and the network namespace it listens in: two instances on one port
in one network namespace are refused under the registry lock, so a simultaneous start of two ids
with the same port cannot both win. (Containers with their own network namespace, such as pods,
may all use one port.)

Plain values in, errors with data out: nothing here knows environment variables or Docker.
"""

import itertools
import os
import time
import uuid

from comfy_init.errors import BusyError
from comfy_init.problems import Problem
from comfy_init.store import claimfiles, locks
from comfy_init.store.clock import parse_utc, utc_now
from comfy_init.store.hostid import boot_id, identity

WATCH_STEP = 0.1
# How long a start waits for the record of a holder that has the lock but has not written it yet
# (two starts at one instant): long enough for one registry write on a loaded machine.
RECORD_GRACE = 3.0


class ClaimHeld(BusyError):
    """Another live holder runs the instance. `record` is its registry record (None when only its
    lock is known)."""

    def __init__(self, instance_id, record, lease, lock_path=None, local_pid=None):
        self.instance_id = instance_id
        self.record = record
        self.lease = lease
        self.local_pid = local_pid
        if record is None:
            problem = Problem(
                "instance-held", f"instance {instance_id!r} is held: a live process on this host"
                f"{f' (pid {local_pid})' if local_pid else ''} holds its lock, but wrote no claim record "
                "(was the registry reset while it ran?)",
                path=lock_path, fix="stop that comfy-init first (`fuser -v` on the lock file shows it)")
        else:
            here = f"; it is pid {local_pid} as seen from here" if local_pid and local_pid != record["pid"] else ""
            problem = Problem(
                "instance-held", f"instance {instance_id!r} is already running: held by {describe_holder(record)}{here}",
                fix=f"stop that one first, or use another instance id. If it is stale: a holder on this host "
                    f"is released the moment its process is gone; one on another host is taken over once it "
                    f"has not renewed for {lease:g} s")
        super().__init__(problem)


class PortTaken(BusyError):
    """Another live claim in our network namespace listens on the same port."""

    def __init__(self, instance_id, port, other_id, record):
        self.other_id = other_id
        super().__init__(Problem(
            "port-in-use", f"port {port} is claimed by instance {other_id!r} ({describe_holder(record)})",
            fix=f"give instance {instance_id!r} another port, or stop {other_id!r}"))


class LostClaim(BusyError):
    """Our claim was taken over while we were not looking (we were frozen or cut off)."""

    def __init__(self, instance_id, generation, current):
        who = ("nobody holds it now" if current is None else
               f"{current['host']} (pid {current['pid']}) holds generation {current['generation']}")
        super().__init__(Problem(
            "claim-lost", f"lost the claim on instance {instance_id!r} (generation {generation}): {who}",
            fix="this process was frozen or cut off longer than the lease; it stops ComfyUI without "
                "touching the registry. Start it again once the other holder is gone"))


class StopRequested(Exception):
    """A stop signal arrived while we waited to claim: give up without claiming."""


def describe_holder(record):
    """Where a holder runs, so a user can find it: host, container, pid, since, renewals."""
    where = record["host"]
    if record.get("container_id"):
        where += f" (container {record['container_id']})"
    return (f"{where}, pid {record['pid']}, since {record['since']}, last renewed {record['renewed_at']} "
            f"(generation {record['generation']}, port {record['port']})")


def network_namespace():
    """An id of our network namespace, e.g. net:[4026531840]; None where /proc does not say."""
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return None


class Claim:
    """A claim we hold. `renew()` keeps it; `release()` gives it back."""

    def __init__(self, registry, instance_id, record, lock, lock_path):
        self.registry = registry
        self.instance_id = instance_id
        self.record = record
        self._lock = lock
        self._lock_path = lock_path

    @property
    def generation(self):
        return self.record["generation"]

    def renew(self):
        """Refresh the heartbeat; raise LostClaim (and write nothing) if someone took over."""
        if self._lock is None:
            # After taking over from a frozen holder we could not get the lock; get it once it is
            # free, so that our own death is again recognised at once.
            self._lock = locks.try_lock(self._lock_path)
        reinstate = self._fence()
        try:
            with self.registry.transaction() as document:
                current = document["claims"].get(self.instance_id)
                if (current is None or reinstate) and self._lock is not None:
                    # Our record vanished (the registry was reset or restored from its .bak, or
                    # meta/claims/ was emptied) while we provably hold the instance's lock: write
                    # it again, under a new generation.
                    current = self._reinstate(document)
                if current is None or current["token"] != self.record["token"]:
                    raise LostClaim(self.instance_id, self.generation, current)
                current["heartbeat"] += 1
                current["renewed_at"] = utc_now()
                current["holds_lock"] = self._lock is not None
                current["lock_domain"] = self._lock and self._lock.domain
                renewed = dict(current)
        except LostClaim:
            raise
        except Exception:
            # The registry is slow or damaged: the claim file alone still keeps the claim alive.
            self._renew_file_only()
            raise
        claimfiles.rewrite(self.registry.layout, self.instance_id, renewed)
        if renewed["generation"] != self.generation:
            claimfiles.remove_below(self.registry.layout, self.instance_id, renewed["generation"])
        self.record = renewed

    def _fence(self):
        """LostClaim when a higher generation exists or our file names another holder; True when
        our file is gone and none replaced it (meta/claims/ emptied: reinstate if we have the lock)."""
        layout = self.registry.layout
        found = claimfiles.generations(layout, self.instance_id)
        if found and found[-1] > self.generation:
            newest = claimfiles.read(layout, self.instance_id, found[-1])
            raise LostClaim(self.instance_id, self.generation, newest)
        own = claimfiles.read(layout, self.instance_id, self.generation)
        if own is None:
            if self._lock is None:
                raise LostClaim(self.instance_id, self.generation, None)
            return True
        if own.get("token") != self.record["token"] or own.get("released_at"):
            raise LostClaim(self.instance_id, self.generation, own)
        return False

    def _renew_file_only(self):
        record = dict(self.record, heartbeat=self.record["heartbeat"] + 1, renewed_at=utc_now())
        try:
            claimfiles.rewrite(self.registry.layout, self.instance_id, record)
        except Exception:
            return
        self.record = record

    def _reinstate(self, document):
        instance = document["instances"].setdefault(
            self.instance_id, {"created_at": self.record["since"], "claim_generation": 0})
        top = max(claimfiles.generations(self.registry.layout, self.instance_id), default=0)
        instance["claim_generation"] = max(instance["claim_generation"], self.record["generation"], top) + 1
        record = dict(self.record, generation=instance["claim_generation"])
        try:
            claimfiles.create(self.registry.layout, self.instance_id, record)
        except FileExistsError:
            raise LostClaim(self.instance_id, self.generation,
                            claimfiles.read(self.registry.layout, self.instance_id, record["generation"])) from None
        document["claims"][self.instance_id] = record
        return record

    def release(self):
        """Remove our record (if still ours), mark our claim file released, and drop the lock.
        Safe to call twice."""
        try:
            with self.registry.transaction() as document:
                current = document["claims"].get(self.instance_id)
                if current is not None and current["token"] == self.record["token"]:
                    del document["claims"][self.instance_id]
        finally:
            try:
                self._release_file()
            finally:
                if self._lock is not None:
                    self._lock.release()
                    self._lock = None

    def _release_file(self):
        """Keep the file (its generation is the next grant's floor) but say it is released."""
        layout = self.registry.layout
        own = claimfiles.read(layout, self.instance_id, self.generation)
        if own is not None and own.get("token") == self.record["token"] and not own.get("released_at"):
            claimfiles.rewrite(layout, self.instance_id, dict(own, released_at=utc_now()))


def acquire(registry, instance_id, *, port, listen, lease, clock=time.monotonic, sleep=time.sleep,
            stop_requested=lambda: False):
    """Claim `instance_id`, or raise ClaimHeld / PortTaken (75) naming the live holder.

    Watching a silent holder takes a whole lease; `stop_requested` is polled meanwhile, and
    StopRequested ends the wait without a claim.
    """
    layout = registry.layout
    registry.check()  # a damaged registry or lock sidecar is refused before anything is created
    try:
        os.makedirs(layout.locks, exist_ok=True)
    except OSError as error:
        from comfy_init.errors import CannotCreateError

        raise CannotCreateError(Problem(
            "cannot-create", f"cannot create the directory: {error.strerror}", path=layout.locks,
            fix="the data directory must be writable for comfy-init")) from None
    lock_path = layout.lock_path(instance_id)
    lock = locks.try_lock(lock_path)
    me = dict(identity(), net_ns=network_namespace())
    try:
        for attempt in itertools.count():
            if attempt:
                # Lost a race for a generation whose winner we cannot see yet (a share's stale
                # cache): look again a little later.
                sleep(min(0.01 * 2 ** min(attempt, 6), 0.5))
            current = _current(registry, instance_id)
            if current is None and lock is None:
                lock, current = _wait_for_lock_or_record(registry, instance_id, lock_path, clock, sleep)
                if lock is None and current is None:
                    raise ClaimHeld(instance_id, None, lease, lock_path, locks.holder_pid(lock_path))
            if current is not None and not _holder_is_gone(current, me, lock):
                local_pid = locks.holder_pid(lock_path) if lock is None else None
                if _looks_fresh(current, lease):
                    raise ClaimHeld(instance_id, current, lease, local_pid=local_pid)
                latest = _watch_heartbeat(registry, instance_id, current, lease, clock, sleep, stop_requested)
                if latest is not None:
                    raise ClaimHeld(instance_id, latest, lease, local_pid=local_pid)
            claim = _take(registry, instance_id, current, me, port, listen, lease, lock, lock_path)
            if claim is not None:
                return claim
            # The record changed between our look and the transaction: judge it again.
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _current(registry, instance_id, view=None):
    """The claim that decides: the highest generation's claim file, or the registry's record when
    it names a higher generation (a holder from before claim files, or one written by hand); None
    when nobody holds the instance (no claim, or the newest file is released)."""
    if view is None:
        view = registry.load()["claims"].get(instance_id)
    found = claimfiles.newest(registry.layout, instance_id)
    if found is None or (view is not None and view["generation"] > found[0]):
        return view
    return None if found[1].get("released_at") else found[1]


def _looks_fresh(record, lease):
    """Renewed less than a lease ago by the wall clock: refuse at once instead of watching. A time
    stamp in the future (a skewed clock) is not fresh: the heartbeat is watched instead."""
    renewed = parse_utc(record["renewed_at"])
    return renewed is not None and 0 <= time.time() - renewed < lease


def _wait_for_lock_or_record(registry, instance_id, lock_path, clock, sleep):
    """The lock is held but there is no record: most likely a start at this very instant that has
    not written it yet (or a port check's brief look). Wait a moment for the record, so a refusal
    can name the holder, or for the lock to come free. Returns (lock or None, record or None)."""
    started = clock()
    while clock() - started < RECORD_GRACE:
        sleep(WATCH_STEP)
        lock = locks.try_lock(lock_path)
        record = _current(registry, instance_id)
        if lock is not None or record is not None:
            return lock, record
    return None, None


def _holder_is_gone(record, me, lock):
    """Whether the holder provably no longer runs, without waiting for its lease."""
    if lock is None:
        return False
    if record["boot_id"] == me["boot_id"]:
        # Same kernel, the holder had the lock, and now it is free: its process is gone. (A holder
        # that took over from a frozen one may not have the lock yet: holds_lock false; only its
        # lease can tell.) Unless it locked another inode: another mount of a share, whose flock
        # does not reach ours (records from before lock domains name none: the same inode).
        if record.get("lock_domain") not in (None, lock.domain):
            return False
        return record.get("holds_lock", True)
    # This very container, started again after the host rebooted: it cannot also run elsewhere.
    return record.get("container_id") is not None and (record["container_id"], record["host"]) == (
        me["container_id"], me["host"])


def _watch_heartbeat(registry, instance_id, seen, lease, clock, sleep, stop_requested):
    """Watch the holder for one lease on our monotonic clock. Return its newer record if it renewed,
    None if it stood still (or went away)."""
    started = clock()
    while clock() - started < lease:
        sleep(WATCH_STEP)
        if stop_requested():
            raise StopRequested()
        now = _current(registry, instance_id)
        if now is None:
            return None
        if (now["token"], now["heartbeat"]) != (seen["token"], seen["heartbeat"]):
            return now
    return None


class _GenerationTaken(Exception):
    """Another contender created the claim file of the generation we meant to take."""


def _take(registry, instance_id, judged, me, port, listen, lease, lock, lock_path):
    """Take the next generation if the claim is still the one we judged: create its claim file
    (which only one contender can) and write the record, under the registry's write lock. Returns
    the Claim, or None when the claim changed or another contender won the generation."""
    layout = registry.layout
    created = None
    try:
        with registry.transaction() as document:
            current = _current(registry, instance_id, document["claims"].get(instance_id))
            if (current is None) != (judged is None) or (current is not None and (
                    current["token"], current["heartbeat"]) != (judged["token"], judged["heartbeat"])):
                return None
            _refuse_port_taken(registry, document, instance_id, port, me)
            record = _new_record(document, layout, instance_id, current, me, lease, lock,
                                 port=port, listen=listen)
            try:
                claimfiles.create(layout, instance_id, record)
            except FileExistsError:
                return None  # the registry lock did not exclude it (a broken owner file): the file did
            created = record
            document["claims"][instance_id] = record
    except BaseException:
        if created is not None:
            _withdraw(layout, instance_id, created)
        raise
    claimfiles.remove_below(layout, instance_id, record["generation"])
    return Claim(registry, instance_id, dict(record), lock, lock_path)


def _new_record(document, layout, instance_id, current, me, lease, lock, **where):
    """Our record for the next generation: above the registry's, the judged claim's and every
    claim file's, so that every contender who judged the same claim asks for the same file."""
    now = utc_now()
    instance = document["instances"].setdefault(instance_id, {"created_at": now, "claim_generation": 0})
    top = max(claimfiles.generations(layout, instance_id), default=0)
    generation = max(instance["claim_generation"], current["generation"] if current else 0, top) + 1
    instance["claim_generation"] = generation
    record = dict(me, generation=generation, token=uuid.uuid4().hex, since=now, renewed_at=now,
                  heartbeat=0, lease_seconds=lease, **where, holds_lock=lock is not None,
                  lock_domain=lock and lock.domain)
    if record["net_ns"] is None:
        del record["net_ns"]
    return record


def _withdraw(layout, instance_id, record):
    """Our registry write failed after the claim file was made: mark the file released."""
    try:
        own = claimfiles.read(layout, instance_id, record["generation"])
        if own is not None and own.get("token") == record["token"]:
            claimfiles.rewrite(layout, instance_id, dict(own, released_at=utc_now()))
    except Exception:
        pass  # the write failure is what the caller reports; the file then ages out by its lease


def _refuse_port_taken(registry, document, instance_id, port, me):
    """Under the registry lock: another live claim on this port in our network namespace wins."""
    if me["net_ns"] is None:
        return
    for other, record in document["claims"].items():
        if other == instance_id or record.get("port") != port:
            continue
        if (record.get("boot_id"), record.get("net_ns")) != (me["boot_id"], me["net_ns"]):
            continue
        other_path = registry.layout.lock_path(other)
        if record.get("lock_domain") not in (None, locks.domain_of(other_path)):
            # Its lock is on another mount of the share: only its heartbeat tells.
            if judge(registry.layout, other, record) == STALE:
                continue
            raise PortTaken(instance_id, port, other, record)
        other_lock = locks.try_lock(other_path)
        if other_lock is not None:  # its holder is gone: a stale record, no conflict
            other_lock.release()
            continue
        raise PortTaken(instance_id, port, other, record)


def port_holder(registry, port, instance_id):
    """The id of another instance whose claim names `port`, if the registry knows one."""
    try:
        claims = registry.load()["claims"]
    except Exception:  # a message about a busy port must not fail on a registry problem
        return None
    for other, record in claims.items():
        if other != instance_id and record.get("port") == port:
            return other
    return None  # (instance_id None: any instance, ours included)


# What a claim record says about its instance, as a person would put it.
RUNNING_HERE, RUNNING_ELSEWHERE, STALE = "running here", "running on another host", "stale claim"


def judge(layout, instance_id, record, holding_lock=False):
    """RUNNING_HERE, RUNNING_ELSEWHERE or STALE for a claim record, by looking only: the lock on
    this host (created by nobody), the heartbeat's age by the wall clock elsewhere. For display and
    dry runs, and for commands that hold the instance's lock themselves (`holding_lock`: a holder
    on this host is then gone); `acquire` decides takeovers by its own rules."""
    same_host = record.get("boot_id") == boot_id()
    lock_path = layout.lock_path(instance_id)
    same_domain = record.get("lock_domain") in (None, locks.domain_of(lock_path))
    if same_host and same_domain and record.get("holds_lock", True):
        if holding_lock:
            return STALE
        return RUNNING_HERE if locks.held_elsewhere(lock_path) else STALE
    renewed = parse_utc(record.get("renewed_at"))
    if renewed is None or time.time() - renewed >= 2 * record.get("lease_seconds", 30):
        return STALE
    return RUNNING_HERE if same_host else RUNNING_ELSEWHERE


def lock_stopped(registry, instance_id, fix):
    """Take the lock of a STOPPED instance for a command that changes it (delete, restore, template
    apply): a start meanwhile waits, then is refused. BusyError (75) when the instance runs: its
    lock is held, or its claim is live elsewhere (a claim of a dead holder on this host is stale,
    since we now hold its lock). Returns the Lock; the caller releases it."""
    layout = registry.layout
    os.makedirs(layout.locks, exist_ok=True)
    lock = locks.try_lock(layout.lock_path(instance_id))
    if lock is None:
        raise BusyError(Problem("instance-held", f"instance {instance_id!r} is running (its lock is held)", fix=fix))
    claim = _current(registry, instance_id)
    if claim is not None and judge(layout, instance_id, claim, holding_lock=True) != STALE:
        lock.release()
        raise BusyError(Problem("instance-held", f"instance {instance_id!r} is running: held by "
                                f"{describe_holder(claim)}", fix=fix))
    return lock
