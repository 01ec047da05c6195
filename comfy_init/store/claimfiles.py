"""Claim files, meta/claims/<id>.<generation>.claim: who holds an instance, decided by the file
server rather than by flock.

Generation G of instance X is granted to whoever creates `X.G.claim`: the record is written under a
temporary name and hard-linked into place (link() never replaces; where hard links are refused an
O_EXCL create decides), so of two contenders for one generation, on any two mounts or hosts of one
share, exactly one wins and the other gets FileExistsError. The holder of X is the holder of its
highest generation; a takeover creates the next one, so a holder that was frozen and wakes finds a
higher generation at its next renewal (fencing) and stops without writing. The holder rewrites its
own file (atomic replace) at each renewal with a new heartbeat; a release rewrites it as released,
so the highest generation, and with it the next one to grant, survives a reset of the registry.

File names and records only; the rules of who may take what are comfy_init.store.claims'.
"""

import json
import os
import re
import time

from comfy_init.store.files import io_failure, publish_new, read_regular, remove_quietly, write_atomic

# How often, and how long, a look that found a file half-visible (an O_EXCL fallback being written,
# or a stale attribute cache of a share) looks again before taking what it sees.
RETRIES, RETRY_FIRST = 6, 0.02


def directory(layout):
    return os.path.join(layout.meta, "claims")


def path(layout, instance_id, generation):
    return os.path.join(directory(layout), f"{instance_id}.{generation}.claim")


def generations(layout, instance_id):
    """The generations that have a claim file, lowest first."""
    pattern = re.compile(re.escape(instance_id) + r"\.([1-9][0-9]{0,17})\.claim\Z")
    try:
        names = os.listdir(directory(layout))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise io_failure(directory(layout), "cannot list the claims", exc) from None
    return sorted(int(match[1]) for name in names if (match := pattern.match(name)))


def read(layout, instance_id, generation):
    """The record in `X.G.claim`; None when it is gone; UNREADABLE when it stays unparsable."""
    where = path(layout, instance_id, generation)
    pause = RETRY_FIRST
    for attempt in range(RETRIES):
        data = read_regular(where)
        if data is None:
            return None
        try:
            record = json.loads(data)
            if isinstance(record, dict) and record.get("generation") == generation:
                return record
        except ValueError:
            pass
        if attempt < RETRIES - 1:
            time.sleep(pause)
            pause *= 2
    return unreadable(generation, where)


def unreadable(generation, where):
    """A stand-in record for a claim file that never parses: it never renews, so it is taken over
    once it has stood still for a lease."""
    return {"generation": generation, "token": f"unreadable:{where}", "host": f"unknown ({where} is unreadable)",
            "boot_id": "", "container_id": None, "pid": 1, "since": "", "renewed_at": "", "heartbeat": 0,
            "lease_seconds": 0, "port": None, "listen": ""}


def newest(layout, instance_id):
    """(generation, record) of the highest generation, or None when X has no claim file. A file
    that vanished between the listing and the read (a takeover cleaning up) is looked for again."""
    for _ in range(RETRIES):
        found = generations(layout, instance_id)
        if not found:
            return None
        record = read(layout, instance_id, found[-1])
        if record is not None:
            return found[-1], record
    return None


def create(layout, instance_id, record, tag=None):
    """Create `X.<record generation>.claim` holding `record`; FileExistsError when it exists."""
    os.makedirs(directory(layout), exist_ok=True)
    where = path(layout, instance_id, record["generation"])
    try:
        publish_new(where, _encode(record), tag)  # link() into place: only one creator can win
    except FileExistsError:
        raise
    except OSError as exc:
        raise io_failure(where, "cannot create the claim file", exc) from None


def rewrite(layout, instance_id, record, tag=None):
    """Replace our own claim file with `record` (a renewal, a release)."""
    write_atomic(path(layout, instance_id, record["generation"]), _encode(record), tag=tag)


def remove_below(layout, instance_id, generation):
    """Remove the claim files of generations below `generation`: the winner of a generation tidies
    up. Their holders, if they still run, find the higher generation at their next renewal."""
    for older in generations(layout, instance_id):
        if older < generation:
            remove_quietly(path(layout, instance_id, older))


def _encode(record):
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
