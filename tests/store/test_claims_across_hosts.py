"""Claims between "hosts": each `comfy-init run` in its own UTS, network and mount namespace, with
its own host name and boot id (a file bind-mounted over /proc/sys/kernel/random/boot_id), sharing
the data tree. Another boot id means a free or held flock proves nothing about the holder: only
the lease (watched on the claimant's monotonic clock) decides. Clocks are skewed with faketime.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.support.processes import COMFY_INIT, ComfyInitProcess, descendants, instance_env, read_registry
from tests.support.standin import make_checkout
from tests.support.waiting import wait_until

INSTANCE = "hosts-test"
BUSY = 75
PORT = 8188  # every host has a network namespace, and so a port 8188, of its own

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="needs root and unshare for the namespaces of a host")

# In the new namespaces: the host's name, its loopback, its boot id; then comfy-init.
HOST_SCRIPT = ('hostname "$1" && ip link set lo up && mount --bind "$2" /proc/sys/kernel/random/boot_id '
               '&& shift 2 && exec "$@"')


class HostRun(ComfyInitProcess):
    """A `comfy-init run` as host `host` would run it; signals go to comfy-init itself."""

    @property
    def signal_pid(self) -> int:
        def comfy_init():
            for pid in sorted(descendants(self.proc.pid)):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as file:
                        argv = file.read().split(b"\0")
                    if os.path.basename(argv[0]).startswith(b"python") and b"comfy_init" in argv:
                        return pid  # not faketime, whose own argv names comfy_init too
                except OSError:
                    continue
            return None
        return wait_until(comfy_init, timeout=10)


class Hosts:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.app = make_checkout(tmp_path / "app")
        self.data = tmp_path / "data"
        self.runs: list[HostRun] = []

    def start(self, host: str, *, skew: str | None = None, **extra) -> HostRun:
        boot_id = self.tmp_path / f"{host}.boot_id"
        if not boot_id.exists():
            boot_id.write_text(f"{uuid.uuid4()}\n")
        clock = ["faketime", "-f", skew] if skew else []
        argv = ["unshare", "--uts", "--net", "--mount", "--fork", "--kill-child", "--",
                "sh", "-c", HOST_SCRIPT, "host", host, str(boot_id), *clock, *COMFY_INIT]
        # Two stand-ins on the instance's one database would lock each other out: in memory.
        env = instance_env(instance_id=INSTANCE, data=self.data, app=self.app, port=PORT,
                           CLI_ARGS="--database-url sqlite:///:memory:", **extra)
        env["STANDIN_LOG_FILE"] = str(self.tmp_path / f"{host}.events.jsonl")
        run = HostRun(env, self.tmp_path, host, argv=argv).start()
        self.runs.append(run)
        return run

    def claim(self) -> dict | None:
        return read_registry(self.data)["claims"].get(INSTANCE)


@pytest.fixture
def hosts(tmp_path):
    hosts = Hosts(tmp_path)
    yield hosts
    for run in hosts.runs:
        run.kill(also=run.comfyui_pids())


def _ready(run: HostRun):
    wait_until(lambda: run.events("started") or run.proc.poll() is not None, timeout=20)
    assert run.proc.poll() is None, run.output()


def test_a_second_host_refuses_while_the_first_renews(hosts):
    first = hosts.start("host-a", COMFY_CLAIM_LEASE=2)
    _ready(first)
    record = hosts.claim()
    assert record["host"] == "host-a" and record["boot_id"] != open("/proc/sys/kernel/random/boot_id").read().strip()
    second = hosts.start("host-b", COMFY_CLAIM_LEASE=2)
    assert second.wait(timeout=30) == BUSY, second.output()
    assert "host-a" in second.stderr() and second.events() == []
    assert hosts.claim()["token"] == record["token"]
    assert first.stop() == 0


def test_a_frozen_host_is_taken_over_after_one_lease_and_stops_without_writing_when_it_resumes(hosts):
    lease = 1.5
    first = hosts.start("host-a", COMFY_CLAIM_LEASE=lease)
    _ready(first)
    [first_comfyui] = first.comfyui_pids()
    held = hosts.claim()
    os.kill(first.signal_pid, signal.SIGSTOP)
    time.sleep(lease + 0.5)  # its last renewal is now older than a lease on any clock

    second = hosts.start("host-b", COMFY_CLAIM_LEASE=lease)
    claimed_after = second.wait_logged("claimed instance", timeout=30)
    assert claimed_after >= lease * 0.9, "another host's silence is watched for a whole lease"
    taken = hosts.claim()
    assert taken["host"] == "host-b" and taken["generation"] == held["generation"] + 1
    assert taken["holds_lock"] is False, "host-a's flock is still held: only the lease decided"

    os.kill(first.signal_pid, signal.SIGCONT)
    assert first.wait(timeout=20) == BUSY, first.output()
    assert "lost the claim" in first.stderr()
    kept = hosts.claim()
    assert kept["token"] == taken["token"] and kept["host"] == "host-b", "the resumed host wrote nothing"
    assert [event["pid"] for event in first.events("graceful_exit")] == [first_comfyui]
    assert second.stop() == 0


@pytest.mark.skipif(shutil.which("faketime") is None, reason="needs faketime (apt-get install faketime)")
@pytest.mark.parametrize("skew", ["+5m", "-5m"])
def test_clocks_skewed_by_minutes_change_nothing(hosts, skew):
    """A claimant whose clock is 5 minutes ahead or behind sees the holder's renewal as old or
    in the future: it watches the heartbeat on its own monotonic clock and still refuses a live
    holder; a frozen one it takes over after one lease, not at once."""
    lease = 1.5
    first = hosts.start("host-a", COMFY_CLAIM_LEASE=lease)
    _ready(first)
    live = hosts.start("host-b", skew=skew, COMFY_CLAIM_LEASE=lease)
    assert live.wait(timeout=30) == BUSY, live.output()
    assert live.events() == []

    os.kill(first.signal_pid, signal.SIGSTOP)
    taker = hosts.start("host-c", skew=skew, COMFY_CLAIM_LEASE=lease)
    claimed_after = taker.wait_logged("claimed instance", timeout=30)
    assert claimed_after >= lease * 0.9, f"a skewed clock ({skew}) must not shorten the wait"
    assert hosts.claim()["host"] == "host-c"
    os.kill(first.signal_pid, signal.SIGCONT)
    assert first.wait(timeout=20) == BUSY
    assert taker.stop() == 0
