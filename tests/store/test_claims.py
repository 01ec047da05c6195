"""Instance claims with real processes: real `comfy-init run`s on one data tree, each with a stand-in
ComfyUI on a free port, as the containers of one host would run them.

Timings are printed (pytest -s shows them) and asserted only against generous bounds.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.support.processes import ComfyInitProcess, alive, instance_env, read_registry
from tests.support.ports import free_port
from tests.support.standin import make_checkout
from tests.support.waiting import wait_until

INSTANCE = "claims-test"
BUSY = 75


class Tree:
    """A data tree and a stand-in checkout shared by every comfy-init the test starts."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.app = make_checkout(tmp_path / "app")
        self.data = tmp_path / "data"
        self.runs: list[ComfyInitProcess] = []

    def start(self, name: str, *, instance_id: str = INSTANCE, port: int | None = None,
              **extra) -> ComfyInitProcess:
        """A `comfy-init run` with its own stand-in event log and captured output."""
        env = instance_env(instance_id=instance_id, data=self.data, app=self.app,
                           port=free_port() if port is None else port, **extra)
        env["STANDIN_LOG_FILE"] = str(self.tmp_path / f"{name}.events.jsonl")
        run = ComfyInitProcess(env, self.tmp_path, name).start()
        self.runs.append(run)
        return run

    def registry(self) -> dict:
        return read_registry(self.data)

    def claim(self, instance_id: str = INSTANCE) -> dict | None:
        return self.registry()["claims"].get(instance_id)

    def lock_is_held(self, instance_id: str = INSTANCE) -> bool:
        """Whether some process holds the claim's flock (meta/locks/<id>.lock) right now."""
        with open(self.data / "meta" / "locks" / f"{instance_id}.lock", "a+b") as file:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)
            return False


@pytest.fixture
def tree(tmp_path):
    tree = Tree(tmp_path)
    yield tree
    for run in tree.runs:
        run.kill(also=run.comfyui_pids())  # a ComfyUI may be an orphan by now


# -- tests -------------------------------------------------------------------------------------------

def test_duplicate_start_exits_75_at_once_naming_the_holder(tree):
    holder = tree.start("holder")
    holder.wait_ready()
    record = tree.claim()

    duplicate = tree.start("duplicate")  # same data tree and id, another port; lease: 30 s
    status = duplicate.wait(timeout=20)
    took = time.monotonic() - duplicate.started_at
    print(f"duplicate start refused after {took:.2f} s (lease 30 s)")

    assert status == BUSY, duplicate.output()
    assert took < 5, "a live holder on this host is recognised without waiting for its lease"
    message = duplicate.stderr()
    assert socket.gethostname() in message
    assert f"pid {holder.pid}" in message
    assert record["since"] in message
    assert duplicate.events() == [], "the duplicate must not start ComfyUI"
    assert tree.claim()["token"] == record["token"]
    assert holder.proc.poll() is None
    assert holder.stop() == 0


def test_claim_of_a_holder_killed_with_sigkill_is_taken_over_at_once(tree):
    dead = tree.start("dead")
    dead.wait_ready()
    [comfyui] = dead.comfyui_pids()
    stale = tree.claim()

    dead.proc.kill()
    dead.proc.wait(timeout=10)
    os.kill(comfyui, signal.SIGKILL)  # orphaned now; it would keep the port and the database
    wait_until(lambda: not alive(comfyui), timeout=10)
    assert tree.claim() == stale, "kill -9 leaves the claim record behind"

    successor = tree.start("successor", port=dead.port)
    claimed_after = successor.wait_logged("claimed instance")
    print(f"claimed {claimed_after:.3f} s after start, the dead holder's record still there")

    assert claimed_after < 5
    assert f"(generation {stale['generation'] + 1})" in successor.stderr()
    successor.wait_ready()
    record = tree.claim()
    assert record["pid"] == successor.pid and record["token"] != stale["token"]
    assert successor.stop() == 0


def test_frozen_holder_is_taken_over_after_one_lease_and_then_stops_without_writing(tree):
    lease = 1.5
    # Only comfy-init is frozen, so the holder's ComfyUI runs on; a frozen container would freeze
    # both. Two stand-ins on the instance's one database would lock each other out: in memory.
    memory_db = "--database-url sqlite:///:memory:"
    holder = tree.start("holder", COMFY_CLAIM_LEASE=lease, CLI_ARGS=memory_db)
    holder.wait_ready()
    [holder_comfyui] = holder.comfyui_pids()
    holder_claim = tree.claim()

    os.kill(holder.pid, signal.SIGSTOP)
    time.sleep(2.0)  # its last renewal is now older than a lease, on any clock
    taker = tree.start("taker", COMFY_CLAIM_LEASE=lease, CLI_ARGS=memory_db)
    claimed_after = taker.wait_logged("claimed instance", timeout=15)
    print(f"frozen holder taken over {claimed_after:.2f} s after start (lease {lease:g} s)")
    assert claimed_after >= lease * 0.9, "the taker must watch the heartbeat for a whole lease"
    assert f"(generation {holder_claim['generation'] + 1})" in taker.stderr()
    taker.wait_ready()

    before = tree.registry()
    taken = before["claims"][INSTANCE]
    assert taken["pid"] == taker.pid and taken["generation"] == holder_claim["generation"] + 1

    os.kill(holder.pid, signal.SIGCONT)
    status = holder.wait(timeout=15)
    after = tree.registry()
    kept = after["claims"][INSTANCE]

    assert status == BUSY, holder.output()
    assert "lost the claim" in holder.stderr()
    # The holder wrote nothing: the claim is the taker's, and every revision since is one of the
    # taker's renewals (each adds one to the revision and one to the heartbeat).
    assert kept["token"] == taken["token"] and kept["pid"] == taker.pid
    assert after["revision"] - kept["heartbeat"] == before["revision"] - taken["heartbeat"]
    assert all(record["pid"] != holder.pid for record in after["claims"].values())
    assert after["instances"][INSTANCE]["claim_generation"] == taken["generation"]
    # The holder stopped its ComfyUI, gracefully.
    assert [e["pid"] for e in holder.events("graceful_exit")] == [holder_comfyui]
    assert not alive(holder_comfyui)
    # With the frozen holder gone, the taker holds the flock again: its own death would now be
    # recognised at once.
    wait_until(tree.lock_is_held, timeout=lease * 2)

    assert taker.proc.poll() is None
    assert taker.stop() == 0
    assert tree.claim() is None


def test_stop_request_while_watching_a_frozen_holder_ends_the_watch(tree):
    """A SIGTERM that arrives while comfy-init watches a silent holder's heartbeat must not wait
    out the lease (30 s by default, Docker kills after 10 s), nor take the claim afterwards."""
    lease = 3.0
    holder = tree.start("holder", COMFY_CLAIM_LEASE=lease)
    holder.wait_ready()
    holder_claim = tree.claim()
    os.kill(holder.pid, signal.SIGSTOP)
    time.sleep(lease + 0.2)  # stale on the wall clock: a new start now watches for a whole lease

    waiter = tree.start("waiter", COMFY_CLAIM_LEASE=lease)
    time.sleep(1.0)  # well inside the watch (it ends about `lease` seconds after the start)
    assert waiter.proc.poll() is None and "claimed instance" not in waiter.stderr()
    sent = time.monotonic()
    waiter.proc.send_signal(signal.SIGTERM)
    status = waiter.wait(timeout=15)
    took = time.monotonic() - sent
    print(f"waiter exited {status} {took:.2f} s after SIGTERM, {lease - 1.0:.1f} s of its watch left")
    os.kill(holder.pid, signal.SIGCONT)

    claim = tree.claim()
    assert took < lease - 1.2 and "claimed instance" not in waiter.stderr(), (
        f"the stop waited {took:.2f} s: the watch went on and ended in a claim\n{waiter.output()}")
    assert status in (0, BUSY)
    assert claim is not None and claim["token"] == holder_claim["token"]
    assert waiter.events() == []
    assert holder.stop() == 0


def test_clean_stop_releases_the_claim_at_once(tree):
    run = tree.start("run")
    run.wait_ready()
    assert tree.claim()["pid"] == run.pid
    assert tree.lock_is_held()

    assert run.stop() == 0
    registry = tree.registry()
    assert INSTANCE not in registry["claims"]
    assert registry["instances"][INSTANCE]["claim_generation"] == 1, "the instance itself stays known"
    assert not tree.lock_is_held()


def test_port_in_use_exits_75_before_comfyui_starts(tree):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = tree.start("run", port=port)
        status = run.wait(timeout=15)

    assert status == BUSY, run.output()
    assert f"COMFY_PORT={port}: port {port} is already in use;" in run.stderr()
    assert run.events() == [], "ComfyUI must not be started on a busy port"
    assert tree.claim() is None, "the claim taken before the port check is given back"


def test_port_held_by_another_claimed_instance_names_that_instance(tree):
    other = tree.start("other", instance_id="other-instance")
    other.wait_ready()

    run = tree.start("run", port=other.port)
    status = run.wait(timeout=15)

    assert status == BUSY, run.output()
    assert f"port {other.port} is already in use by instance 'other-instance'" in run.stderr()
    assert run.events() == []
    assert tree.claim() is None
    assert tree.claim("other-instance")["pid"] == other.pid
    assert other.stop() == 0
