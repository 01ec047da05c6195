"""Instance claims: at most one running ComfyUI per instance id, across containers and hosts.

A claim is two things at once:

- an flock on `meta/locks/<id>.lock`, held by comfy-init for its whole life. The kernel drops it
  the instant the holder dies (kill -9, OOM, container killed), so on the same host a dead holder
  is recognised at once: same boot id + lock free = holder gone.
- a record in the registry (`claims.<id>`) naming the holder, renewed every lease/3 seconds with a
  heartbeat counter and fenced by a generation number. A holder elsewhere (another host, or one
  frozen on this host) is taken over only after the claimant has watched the heartbeat stand
  still for a whole lease on its OWN monotonic clock, so clocks of different hosts never matter.
  A holder that wakes up after losing its claim sees a foreign token at its next renewal, writes
  nothing, and stops.
"""

import calendar
import fcntl
import os
import socket
import time
import uuid

from comfy_init.errors import BusyError, CannotCreateError

WATCH_STEP = 0.1


class LostClaim(BusyError):
    """Our claim was taken over while we were not looking (we were frozen or cut off)."""


class StopRequested(Exception):
    """A stop signal arrived while we waited to claim: give up without claiming."""


def utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _parse_utc(text):
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return 0.0


def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
            return file.read().strip()
    except OSError:
        return "unknown"


def container_id():
    """The Docker container id when we run in one (from our mounts), else None."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                marker = line.find("/containers/")
                if marker != -1 and "/hostname " in line:
                    candidate = line[marker + len("/containers/"):].split("/", 1)[0]
                    if len(candidate) == 64 and all(c in "0123456789abcdef" for c in candidate):
                        return candidate[:12]
    except OSError:
        pass
    return None


def describe_holder(instance_id, record, lease):
    where = record["host"] + (f" (container {record['container_id']})" if record.get("container_id") else "")
    return (
        f"instance {instance_id!r} is already running: held by {where}, pid {record['pid']}, "
        f"since {record['since']}, last renewed {record['renewed_at']} (generation {record['generation']}, "
        f"port {record['port']}). Stop that one first, or use another COMFY_INSTANCE_ID. If it is stale: "
        "a holder on this host is released the moment its process is gone (check `docker ps`); "
        f"one on another host is taken over once it has not renewed for {lease:g} s")


class Claim:
    """A claim we hold. `renew()` keeps it; `release()` gives it back."""

    def __init__(self, registry, instance_id, record, lock_file, lock_path):
        self.registry = registry
        self.instance_id = instance_id
        self.record = record
        self._lock_file = lock_file
        self._lock_path = lock_path

    @property
    def generation(self):
        return self.record["generation"]

    def renew(self):
        """Refresh the heartbeat; raise LostClaim (and write nothing) if someone took over."""
        self._try_lock()
        with self.registry.transaction() as document:
            current = document["claims"].get(self.instance_id)
            if current is None and self._lock_file is not None:
                # Our record vanished (the registry was reset or restored from its .bak) while we
                # provably hold the instance's lock: write it again, under a new generation.
                current = self._reinstate(document)
            if current is None or current["token"] != self.record["token"]:
                raise LostClaim(self._lost_message(current))
            current["heartbeat"] += 1
            current["renewed_at"] = utc_now()
            current["holds_lock"] = self._lock_file is not None
            self.record = dict(current)

    def _reinstate(self, document):
        instance = document["instances"].setdefault(
            self.instance_id, {"created_at": self.record["since"], "claim_generation": 0})
        instance["claim_generation"] = max(instance["claim_generation"], self.record["generation"]) + 1
        record = dict(self.record, generation=instance["claim_generation"])
        document["claims"][self.instance_id] = record
        return record

    def release(self):
        """Remove our record (if still ours) and drop the lock. Safe to call twice."""
        try:
            with self.registry.transaction() as document:
                current = document["claims"].get(self.instance_id)
                if current is not None and current["token"] == self.record["token"]:
                    del document["claims"][self.instance_id]
        finally:
            if self._lock_file is not None:
                self._lock_file.close()  # closing drops the flock
                self._lock_file = None

    def _try_lock(self):
        # After taking over from a frozen holder we could not get the lock; get it once it is free,
        # so that our own death is again recognised at once.
        if self._lock_file is None:
            self._lock_file = _try_flock(self._lock_path)

    def _lost_message(self, current):
        who = "nobody holds it now" if current is None else f"{current['host']} (pid {current['pid']}) holds generation {current['generation']}"
        return (f"lost the claim on instance {self.instance_id!r} (generation {self.generation}): {who}. "
                "This process was frozen or cut off longer than the lease; it stops ComfyUI without "
                "touching the registry. Start it again once the other holder is gone")


def _try_flock(path):
    """Open `path` and take an exclusive flock without waiting; return the file, or None if held."""
    try:
        file = open(path, "a+b")  # Python opens it close-on-exec: ComfyUI never inherits it
    except OSError as error:
        raise CannotCreateError(f"cannot open the claim lock {path}: {error.strerror}") from None
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        return None
    return file


def acquire(registry, config, *, lease=None, clock=time.monotonic, sleep=time.sleep,
            stop_requested=lambda: False):
    """Claim `config.instance_id`, or raise BusyError (75) naming the live holder.

    Watching a silent holder takes a whole lease; `stop_requested` is polled meanwhile, and
    StopRequested ends the wait without a claim.
    """
    lease = config.claim_lease if lease is None else lease
    instance_id = config.instance_id
    locks_dir = os.path.join(config.meta_dir, "locks")
    try:
        os.makedirs(locks_dir, exist_ok=True)
    except OSError as error:
        raise CannotCreateError(f"cannot create {locks_dir}: {error.strerror}; the data directory must "
                                "be writable for comfy-init") from None
    lock_path = os.path.join(locks_dir, f"{instance_id}.lock")
    lock_file = _try_flock(lock_path)
    me = {"host": socket.gethostname(), "boot_id": boot_id(), "container_id": container_id(),
          "pid": os.getpid()}
    try:
        while True:
            current = registry.load()["claims"].get(instance_id)
            if current is None and lock_file is None:
                raise BusyError(
                    f"instance {instance_id!r} has no claim in the registry, but a live process on this "
                    f"host holds its lock {lock_path} (was the registry reset while it ran?); stop that "
                    "comfy-init first (`fuser -v` on the lock file shows it)")
            if current is not None and not _holder_is_gone(current, me, lock_file):
                if time.time() - _parse_utc(current["renewed_at"]) < lease:
                    raise BusyError(describe_holder(instance_id, current, lease))
                latest = _watch_heartbeat(registry, instance_id, current, lease, clock, sleep, stop_requested)
                if latest is not None:
                    raise BusyError(describe_holder(instance_id, latest, lease))
            claim = _take(registry, config, instance_id, current, me, lease, lock_file, lock_path)
            if claim is not None:
                return claim
            # The record changed between our look and the transaction: judge it again.
    except BaseException:
        if lock_file is not None:
            lock_file.close()
        raise


def _holder_is_gone(record, me, lock_file):
    """Whether the holder provably no longer runs, without waiting for its lease."""
    if lock_file is None:
        return False
    if record["boot_id"] == me["boot_id"]:
        # Same kernel, the holder had the lock, and now it is free: its process is gone. (A holder
        # that took over from a frozen one may not have the lock yet: holds_lock false; only its
        # lease can tell.)
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
        now = registry.load()["claims"].get(instance_id)
        if now is None:
            return None
        if (now["token"], now["heartbeat"]) != (seen["token"], seen["heartbeat"]):
            return now
    return None


def _take(registry, config, instance_id, judged, me, lease, lock_file, lock_path):
    """Write our claim if the record is still the one we judged; return the Claim or None."""
    with registry.transaction() as document:
        current = document["claims"].get(instance_id)
        if (current is None) != (judged is None) or (
                current is not None and (current["token"], current["heartbeat"]) != (judged["token"], judged["heartbeat"])):
            return None
        now = utc_now()
        instance = document["instances"].setdefault(
            instance_id, {"created_at": now, "claim_generation": 0})
        generation = max(instance["claim_generation"], current["generation"] if current else 0) + 1
        instance["claim_generation"] = generation
        instance["port"] = config.port
        instance["listen"] = config.listen
        record = dict(me, generation=generation, token=uuid.uuid4().hex, since=now, renewed_at=now,
                      heartbeat=0, lease_seconds=lease, port=config.port, listen=config.listen,
                      holds_lock=lock_file is not None)
        document["claims"][instance_id] = record
    return Claim(registry, instance_id, dict(record), lock_file, lock_path)


def port_holder(registry, port, instance_id):
    """The id of another instance whose claim names `port`, if the registry knows one."""
    try:
        claims = registry.load()["claims"]
    except Exception:  # a message about a busy port must not fail on a registry problem
        return None
    for other, record in claims.items():
        if other != instance_id and record.get("port") == port:
            return other
    return None
