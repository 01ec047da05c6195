"""The claim rules, judged on registry records written by hand (no processes)."""

import pytest

from comfy_init.boot.config import load_config
from comfy_init.errors import BusyError
from comfy_init.store import claims, hostid
from comfy_init.store.clock import utc_now
from comfy_init.store.hostid import boot_id
from comfy_init.store.registry import Registry


def acquire(registry, config, **options):
    """claims.acquire with the instance id, port, listen address and lease of `config`."""
    return claims.acquire(registry, config.instance_id, port=config.port, listen=config.listen,
                          lease=options.pop("lease", config.claim_lease), **options)


@pytest.fixture
def setup(tmp_path):
    config = load_config({"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "core-1",
                          "COMFY_DATA_DIRECTORY": str(tmp_path), "COMFY_CLAIM_LEASE": "1"})
    return config, Registry(config.layout)


def plant(registry, **fields):
    record = {"generation": 4, "token": "other", "host": "h", "boot_id": boot_id(),
              "container_id": None, "pid": 999999, "since": utc_now(), "renewed_at": utc_now(),
              "heartbeat": 7, "lease_seconds": 1.0, "port": 8188, "listen": "0.0.0.0"}
    record.update(fields)
    with registry.transaction() as document:
        document["instances"]["core-1"] = {"created_at": utc_now(), "claim_generation": 4}
        document["claims"]["core-1"] = record
    return record


def test_dead_holder_on_this_host_is_taken_over_at_once(setup):
    config, registry = setup
    plant(registry)  # same boot id, lock free: its process is gone
    slept = []
    claim = acquire(registry, config, sleep=slept.append)
    assert slept == [] and claim.generation == 5
    assert registry.load()["claims"]["core-1"]["holds_lock"] is True
    claim.release()
    assert "core-1" not in registry.load()["claims"]


def test_fresh_holder_without_the_lock_is_not_taken_for_dead(setup):
    # A holder that took over from a frozen one runs without the lock until that one exits; a free
    # lock then proves nothing about it.
    config, registry = setup
    plant(registry, holds_lock=False)
    with pytest.raises(BusyError) as caught:
        acquire(registry, config, sleep=lambda _: None)
    assert "instance 'core-1' is already running: held by h, pid 999999" in caught.value.lines()[0]
    assert registry.load()["claims"]["core-1"]["token"] == "other"


def test_silent_holder_elsewhere_is_taken_over_after_a_lease_on_our_clock(setup):
    config, registry = setup
    plant(registry, boot_id="another-host", renewed_at="2000-01-01T00:00:00Z")
    now = [0.0]
    claim = acquire(registry, config, clock=lambda: now[0],
                    sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    assert now[0] >= 1.0  # watched a whole lease before taking over
    assert claim.generation == 5


def test_a_renewing_holder_elsewhere_keeps_its_claim(setup):
    config, registry = setup
    record = plant(registry, boot_id="another-host", renewed_at="2000-01-01T00:00:00Z")

    def holder_renews(_seconds):
        with registry.transaction() as document:
            document["claims"]["core-1"]["heartbeat"] += 1

    with pytest.raises(BusyError):
        acquire(registry, config, sleep=holder_renews)
    assert registry.load()["claims"]["core-1"]["token"] == record["token"]


def test_a_stop_request_ends_the_watch_without_a_claim(setup):
    config, registry = setup
    plant(registry, boot_id="another-host", renewed_at="2000-01-01T00:00:00Z")
    with pytest.raises(claims.StopRequested):
        acquire(registry, config, sleep=lambda _: None, stop_requested=lambda: True)
    assert registry.load()["claims"]["core-1"]["token"] == "other"


def test_renewal_after_a_takeover_raises_lost_claim_and_writes_nothing(setup):
    config, registry = setup
    claim = acquire(registry, config)
    with registry.transaction() as document:
        document["claims"]["core-1"]["token"] = "taken-over"
    revision = registry.load()["revision"]
    with pytest.raises(claims.LostClaim):
        claim.renew()
    assert registry.load()["revision"] == revision


def test_this_container_after_a_host_reboot_takes_its_claim_back_at_once(setup, monkeypatch):
    config, registry = setup
    monkeypatch.setattr(hostid, "container_id", lambda: "0123456789ab")
    import socket
    plant(registry, boot_id="before-the-reboot", host=socket.gethostname(), container_id="0123456789ab")
    slept = []
    claim = acquire(registry, config, sleep=slept.append)
    assert slept == [] and claim.generation == 5


def test_another_container_after_a_reboot_still_waits_for_the_lease(setup, monkeypatch):
    config, registry = setup
    monkeypatch.setattr(hostid, "container_id", lambda: "0123456789ab")
    plant(registry, boot_id="before-the-reboot", container_id="ffffffffffff")
    with pytest.raises(BusyError):
        acquire(registry, config, sleep=lambda _: None)


def test_a_registry_reset_does_not_stop_a_holder_that_has_the_lock(setup):
    config, registry = setup
    claim = acquire(registry, config)
    with registry.transaction() as document:  # what COMFY_REGISTRY_RECOVER=reset leaves
        document["claims"].clear()
        document["instances"].clear()
    claim.renew()
    record = registry.load()["claims"]["core-1"]
    assert record["token"] == claim.record["token"] and record["generation"] == 2
    assert registry.load()["instances"]["core-1"]["claim_generation"] == 2


def test_a_holder_in_another_pid_namespace_is_named_by_its_pid_as_seen_from_here(setup):
    import os
    import subprocess
    import sys

    config, registry = setup
    lock_path = config.layout.lock_path("core-1")
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(60)"), lock_path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        plant(registry, pid=1, container_id="3f2a9c1d0e7b", host="3f2a9c1d0e7b")  # PID 1 of a container
        with pytest.raises(claims.ClaimHeld) as caught:  # a lease long enough that it is judged fresh
            acquire(registry, config, sleep=lambda _: None, lease=30)
        line = caught.value.lines()[0]
        assert "container 3f2a9c1d0e7b), pid 1" in line and f"it is pid {holder.pid} as seen from here" in line
    finally:
        holder.kill()
        holder.wait()
