"""Many writers, killed writers and held locks, with real processes."""

import json
import os
import random
import signal
import threading
import time
import traceback

import pytest
from tests.support.registry_data import flock_held_elsewhere, instance, registry_at, temp_files

from comfy_init.errors import BusyError
from comfy_init.store.registry import schema_problems

WRITERS = 8
TRANSACTIONS_EACH = 200
KILLS = 1000


def fork_child(body) -> int:
    """Run `body()` in a forked child that leaves with os._exit: 0 if it returned, 1 if it raised."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            body()
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    return pid


def test_concurrent_writers_lose_no_update(meta):
    def writer(number):
        reg = registry_at(meta, lock_timeout=60.0)
        for i in range(TRANSACTIONS_EACH):
            with reg.transaction() as doc:
                doc["instances"][f"w{number}-{i}"] = instance(claim_generation=doc["revision"])

    started = time.monotonic()
    pids = [fork_child(lambda n=n: writer(n)) for n in range(WRITERS)]
    statuses = [os.waitpid(pid, 0)[1] for pid in pids]
    elapsed = time.monotonic() - started
    assert all(os.waitstatus_to_exitcode(s) == 0 for s in statuses), statuses

    doc = registry_at(meta).load()
    expected = {f"w{n}-{i}" for n in range(WRITERS) for i in range(TRANSACTIONS_EACH)}
    assert set(doc["instances"]) == expected
    assert doc["revision"] == WRITERS * TRANSACTIONS_EACH
    # Each writer saw the revision before its own write: all of 0..1599, each exactly once.
    assert sorted(v["claim_generation"] for v in doc["instances"].values()) == list(range(len(expected)))
    assert temp_files(meta) == [], f"left after the final write: {os.listdir(meta)}"
    print(f"{WRITERS * TRANSACTIONS_EACH} transactions by {WRITERS} processes in {elapsed:.1f} s")


def test_writers_killed_at_random_instants_never_break_the_registry(meta):
    seed = int(os.environ.get("REGISTRY_KILL_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    reg = registry_at(meta)
    # Write once here, so that the forked writers inherit the parsed schema and its validator
    # instead of each building them again: that alone can take longer than a writer lives.
    with reg.transaction() as doc:
        doc["instances"]["first"] = instance()

    def writer():
        own = registry_at(meta, lock_timeout=60.0)
        n = 0
        while True:
            with own.transaction() as doc:
                doc["instances"][f"i{n % 5}"] = instance(claim_generation=doc["revision"])
                doc["claims"].pop(f"i{(n + 2) % 5}", None)
            n += 1

    last_revision = 1
    most_strays = 0
    kills_leaving_strays = 0
    started = time.monotonic()
    for kill in range(KILLS):
        pid = fork_child(writer)
        time.sleep(rng.uniform(0, 0.02))
        if kill % 10 == 0:
            # On a loaded machine a writer may not finish one transaction in 20 ms: every tenth
            # writer lives until it has written, so the registry surely moves forward.
            deadline = time.monotonic() + 10
            while reg.load()["revision"] <= last_revision and time.monotonic() < deadline:
                time.sleep(0.001)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
            f"writer ended on its own (status {status}) at kill {kill}; seed {seed}")

        doc = reg.load()  # raises DataError if the kill left a broken registry
        assert doc["revision"] >= last_revision, f"revision went backwards at kill {kill}; seed {seed}"
        last_revision = doc["revision"]
        if os.path.exists(reg.backup_path):
            # The .bak is always a complete good version: the one before, or the same one when
            # the kill fell between keeping the .bak and replacing the file.
            with open(reg.backup_path, "rb") as f:
                backup = json.loads(f.read())
            assert schema_problems(backup) == [], f"seed {seed}"
            assert backup["revision"] in (last_revision - 1, last_revision), f"seed {seed}"
        # Strays pile up only while kills land before a writer gets to clean them.
        strays = len(temp_files(meta))
        most_strays = max(most_strays, strays)
        kills_leaving_strays += strays > 0
        assert strays <= 20, f"{strays} temp files after kill {kill}; seed {seed}"
    elapsed = time.monotonic() - started

    assert last_revision > 1, "no writer ever finished a transaction"
    # The next write removes what the killed writers left.
    with reg.transaction() as doc:
        doc["instances"]["final"] = instance()
    assert temp_files(meta) == [], f"left after the final write: {os.listdir(meta)}"
    assert reg.load()["revision"] == last_revision + 1
    print(f"{KILLS} kills in {elapsed:.1f} s, {last_revision} transactions; temp files left after"
          f" {kills_leaving_strays} kills, at most {most_strays} at once; seed {seed}")


@pytest.fixture
def lock_held_elsewhere(realistic):
    with flock_held_elsewhere(realistic.lock_path):
        yield realistic


def test_a_held_lock_times_out_with_busy_error(lock_held_elsewhere):
    reg = registry_at(lock_held_elsewhere.meta_dir, lock_timeout=0.3)
    before = reg.load()
    started = time.monotonic()
    with pytest.raises(BusyError) as caught:
        with reg.transaction() as doc:
            doc["instances"]["x"] = instance()
    waited = time.monotonic() - started
    assert 0.3 <= waited < 2.0
    error = caught.value
    assert error.exit_code == 75
    assert [p.kind for p in error.problems] == ["lock-timeout"]
    assert error.lines() == [
        f"{reg.lock_path}: another comfy-init still holds this lock after 0.3 s of waiting; wait for it"
        " to finish and try again; if no comfy-init is running, there is nothing to delete: a flock lock"
        " vanishes with the process that holds it, so look for a hung process that still has the file"
        f" open (`fuser -v {reg.lock_path}` on the host)"]
    with pytest.raises(BusyError):
        reg.recover("reset")
    # Readers need no lock.
    assert reg.load() == before


def test_the_lock_is_taken_as_soon_as_it_is_released(realistic):
    reg = registry_at(realistic.meta_dir, lock_timeout=5.0)
    with flock_held_elsewhere(realistic.lock_path) as release:
        releaser = threading.Timer(0.2, release)
        releaser.start()
        started = time.monotonic()
        with reg.transaction() as doc:
            doc["instances"]["x"] = instance()
        waited = time.monotonic() - started
        releaser.join()
    assert 0.2 <= waited < 1.0
    assert reg.load()["revision"] == 4
