"""Claim files (meta/claims/<id>.<generation>.claim), the registry's owner file and lock-domain
temp names, with real processes racing on real files of this host's filesystem. The same races
across two mounts whose flock does not reach each other: tests/store/test_share_races.py."""

import json
import os
import subprocess
import sys
import time

import pytest

from comfy_init.boot.config import load_config
from comfy_init.errors import DataError
from comfy_init.store import claimfiles, claims, locks, sharelock
from comfy_init.store.clock import utc_now
from comfy_init.store.files import FOREIGN_TEMP_AGE, clean_stale_temps
from comfy_init.store.registry import Registry

INSTANCE = "core-1"

# A child that waits for the start file, then does one thing and prints what came of it as JSON.
RACE = r"""
import json, os, sys, threading, time
from comfy_init.boot.config import load_config
from comfy_init.store import claimfiles, claims
from comfy_init.store.registry import Registry
what, data, go = sys.argv[1:4]
LEASE = 2.0
config = load_config({"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "core-1",
                      "COMFY_DATA_DIRECTORY": data})
registry = Registry(config.layout, lock_timeout=30)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
if what == "create":
    record = json.loads(sys.argv[4])
    record["pid"] = os.getpid()
    try:
        claimfiles.create(config.layout, "core-1", record)
        print(json.dumps({"won": True}), flush=True)
    except FileExistsError:
        print(json.dumps({"won": False}), flush=True)
else:
    try:
        claim = claims.acquire(registry, "core-1", port=8188, listen="0.0.0.0", lease=LEASE)
        print(json.dumps({"won": True, "generation": claim.generation}), flush=True)
        def renew():  # as comfy-init's renewer does, more often: a winner that stops renewing loses
            while True:
                time.sleep(LEASE / 6)
                claim.renew()
        threading.Thread(target=renew, daemon=True).start()
        sys.stdin.read()  # hold it until the test is done looking
        claim.renew()  # raises LostClaim (exit 1) if it was taken over meanwhile
    except claims.ClaimHeld as held:
        print(json.dumps({"won": False, "line": held.lines()[0]}), flush=True)
"""


def config_for(data, lease="1"):
    return load_config({"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": INSTANCE,
                        "COMFY_DATA_DIRECTORY": str(data), "COMFY_CLAIM_LEASE": lease})


@pytest.fixture
def setup(tmp_path):
    config = config_for(tmp_path / "data")
    return config, Registry(config.layout)


def foreign_record(generation, **extra):
    """A claim as a holder on another host writes it, renewed long ago."""
    record = {"generation": generation, "token": f"far-{generation}", "host": "far-node",
              "boot_id": "another-boot", "container_id": None, "pid": 4242, "since": "2000-01-01T00:00:00Z",
              "renewed_at": "2000-01-01T00:00:00Z", "heartbeat": 3, "lease_seconds": 0.5, "port": 8188,
              "listen": "0.0.0.0", "holds_lock": True, "lock_domain": "another-boot:1:2"}
    record.update(extra)
    return record


def race(what, data_dirs, go, *extra, contenders=8):
    """Start `contenders` children (spread over `data_dirs`), let them go at once, return their
    answers and the processes (which may still hold a claim: the caller closes their stdin)."""
    children = [subprocess.Popen([sys.executable, "-c", RACE, what, str(data_dirs[n % len(data_dirs)]),
                                  str(go), *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for n in range(contenders)]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    open(go, "w").close()
    answers = [json.loads(child.stdout.readline()) for child in children]
    return answers, children


def finish(children):
    """Let the children go; their exit statuses (a holder exits 1 if it lost its claim meanwhile)."""
    for child in children:
        child.stdin.close()
    return [child.wait(timeout=30) for child in children]


def test_eight_processes_creating_one_generation_exactly_one_wins(setup, tmp_path):
    config, _ = setup
    for generation in (1, 2, 3):
        answers, children = race("create", [config.data_dir], tmp_path / f"go-{generation}",
                                 json.dumps(foreign_record(generation)))
        finish(children)
        assert sum(answer["won"] for answer in answers) == 1, answers
        assert claimfiles.newest(config.layout, INSTANCE)[0] == generation
        os.remove(tmp_path / f"go-{generation}")


def test_processes_racing_to_take_over_one_stale_claim_exactly_one_wins(setup, tmp_path):
    config, registry = setup
    os.makedirs(claimfiles.directory(config.layout))
    claimfiles.create(config.layout, INSTANCE, foreign_record(4))
    answers, children = race("acquire", [config.data_dir], tmp_path / "go", contenders=6)
    try:
        winners = [answer for answer in answers if answer["won"]]
        assert len(winners) == 1 and winners[0]["generation"] == 5, answers
        assert all("already running: held by" in answer["line"] for answer in answers if not answer["won"])
        newest = claimfiles.newest(config.layout, INSTANCE)
        assert newest[0] == 5 and registry.load()["claims"][INSTANCE]["token"] == newest[1]["token"]
        assert claimfiles.generations(config.layout, INSTANCE) == [5], "the winner removed the stale file"
    finally:
        assert finish(children) == [0] * 6, "the winner still held its claim at the end"


def test_a_higher_generation_fences_the_old_holder_which_writes_nothing(setup):
    config, registry = setup
    claim = claims.acquire(registry, INSTANCE, port=8188, listen="0.0.0.0", lease=1)
    own = claimfiles.read(config.layout, INSTANCE, claim.generation)
    # What a takeover from another mount does: the next generation's file, by link().
    claimfiles.create(config.layout, INSTANCE, foreign_record(claim.generation + 1, renewed_at=utc_now()))
    revision = registry.load()["revision"]
    with pytest.raises(claims.LostClaim) as lost:
        claim.renew()
    assert "far-node (pid 4242) holds generation 2" in lost.value.lines()[0]
    assert registry.load()["revision"] == revision, "the fenced holder wrote no registry"
    assert claimfiles.read(config.layout, INSTANCE, claim.generation) == own, "nor its claim file"
    claim.release()  # what launch does not do after a loss; still harmless: nothing is ours
    assert claimfiles.newest(config.layout, INSTANCE)[1]["token"] == "far-2"


def test_a_start_refuses_while_the_newest_claim_file_is_fresh_even_without_a_registry_record(setup):
    config, registry = setup
    os.makedirs(claimfiles.directory(config.layout))
    claimfiles.create(config.layout, INSTANCE, foreign_record(1, renewed_at=utc_now()))
    with pytest.raises(claims.ClaimHeld) as held:
        claims.acquire(registry, INSTANCE, port=8188, listen="0.0.0.0", lease=30, sleep=lambda _: None)
    assert "held by far-node, pid 4242" in held.value.lines()[0]


def test_release_keeps_the_generation_so_a_registry_reset_cannot_reuse_it(setup):
    config, registry = setup
    first = claims.acquire(registry, INSTANCE, port=8188, listen="0.0.0.0", lease=1)
    first.renew()
    first.release()
    assert claimfiles.newest(config.layout, INSTANCE)[1]["released_at"]
    with registry.transaction() as document:  # what COMFY_REGISTRY_RECOVER=reset leaves
        document["instances"].clear()
    second = claims.acquire(registry, INSTANCE, port=8188, listen="0.0.0.0", lease=1)
    assert second.generation == 2 and claimfiles.generations(config.layout, INSTANCE) == [2]
    second.release()


def test_a_holder_whose_claim_files_were_deleted_reinstates_them_while_it_has_the_lock(setup):
    config, registry = setup
    claim = claims.acquire(registry, INSTANCE, port=8188, listen="0.0.0.0", lease=1)
    os.remove(claimfiles.path(config.layout, INSTANCE, 1))
    claim.renew()
    assert claim.generation == 2 and claimfiles.newest(config.layout, INSTANCE)[1]["token"] == claim.record["token"]
    claim.release()


def test_a_dead_holder_of_this_lock_domain_is_taken_over_at_once(setup):
    config, registry = setup
    child = subprocess.run([sys.executable, "-c", (
        "import sys, os; from comfy_init.boot.config import load_config; "
        "from comfy_init.store import claims; from comfy_init.store.registry import Registry; "
        "c = load_config({'COMFY_MULTI_INSTANCE': 'true', 'COMFY_INSTANCE_ID': 'core-1', "
        "'COMFY_DATA_DIRECTORY': sys.argv[1]}); "
        "claims.acquire(Registry(c.layout), 'core-1', port=8188, listen='0.0.0.0', lease=30); os._exit(0)"),
        str(config.data_dir)], timeout=30)
    assert child.returncode == 0
    record = claimfiles.newest(config.layout, INSTANCE)[1]
    assert record["lock_domain"] == locks.domain_of(config.layout.lock_path(INSTANCE))
    slept = []
    claim = claims.acquire(registry, INSTANCE, port=8188, listen="0.0.0.0", lease=30, sleep=slept.append)
    assert slept == [] and claim.generation == 2
    claim.release()


def test_a_free_lock_of_another_domain_proves_nothing(setup):
    """A holder on another mount of the share (same boot id, another device) holds its own flock
    there; ours is free. Only its lease may decide."""
    config, registry = setup
    os.makedirs(claimfiles.directory(config.layout))
    here = claims.boot_id()
    claimfiles.create(config.layout, INSTANCE, foreign_record(1, boot_id=here, lock_domain=f"{here}:999:1",
                                                              renewed_at=utc_now()))
    with pytest.raises(claims.ClaimHeld):
        claims.acquire(registry, INSTANCE, port=8188, listen="0.0.0.0", lease=30, sleep=lambda _: None)
    record = claimfiles.newest(config.layout, INSTANCE)[1]
    assert claims.judge(config.layout, INSTANCE, record) == claims.RUNNING_HERE


def test_an_owner_file_left_by_a_dead_writer_is_broken_at_once_in_our_domain(setup):
    _, registry = setup
    with registry.transaction() as document:
        document["instances"]["a"] = {"created_at": utc_now(), "claim_generation": 0}
    with open(registry.owner_path, "w") as file:  # what a writer killed inside its write leaves
        json.dump({"token": "dead", "domain": locks.domain_of(registry.lock_path), "pid": 1}, file)
    started = time.monotonic()
    with registry.transaction() as document:
        document["instances"]["b"] = {"created_at": utc_now(), "claim_generation": 0}
    assert time.monotonic() - started < 1
    assert not os.path.exists(registry.owner_path)


def test_an_owner_file_of_another_domain_is_broken_only_after_standing_still(setup, monkeypatch):
    _, registry = setup
    monkeypatch.setattr(sharelock, "STALE_AFTER", 0.6)
    os.makedirs(registry.meta_dir, exist_ok=True)
    with open(registry.owner_path, "w") as file:
        json.dump({"token": "far", "domain": "another-boot:1:2", "pid": 7}, file)
    started = time.monotonic()
    with registry.transaction() as document:
        document["instances"]["b"] = {"created_at": utc_now(), "claim_generation": 0}
    assert 0.6 <= time.monotonic() - started < 3
    registry.lock_timeout = 0.3
    with open(registry.owner_path, "w") as file:
        json.dump({"token": "far", "domain": "another-boot:1:2", "pid": 7}, file)
    monkeypatch.setattr(sharelock, "STALE_AFTER", 30)
    with pytest.raises(claims.BusyError) as busy:
        with registry.transaction() as document:
            document["instances"]["c"] = {"created_at": utc_now(), "claim_generation": 0}
    assert "pid 7, lock domain another-boot:1:2" in busy.value.lines()[0]


def test_temp_files_of_another_lock_domain_are_removed_only_when_old(tmp_path):
    target = tmp_path / "instance-registry.json"
    ours, theirs = "0000aaaa", "1111bbbb"
    names = {"ours": f".{target.name}.tmp-5-{ours}12345678", "theirs_young": f".{target.name}.tmp-6-{theirs}12345678",
             "theirs_old": f".{target.name}.tmp-7-{theirs}87654321", "untagged": f".{target.name}.tmp-8-abcdef01"}
    for name in names.values():
        (tmp_path / name).write_text("{")
    old = time.time() - FOREIGN_TEMP_AGE - 60
    os.utime(tmp_path / names["theirs_old"], (old, old))
    removed = {os.path.basename(path) for path in clean_stale_temps(target, ours)}
    assert removed == {names["ours"], names["theirs_old"], names["untagged"]}
    assert os.listdir(tmp_path) == [names["theirs_young"]]


def test_check_finds_and_removes_a_stale_temporary_of_a_claim_file_and_of_the_owner_file(setup):
    from comfy_init.ops.check import temps
    from comfy_init.ops.check.context import Context

    config, registry = setup
    claim = claims.acquire(registry, INSTANCE, port=8188, listen="0.0.0.0", lease=1)
    claim.release()
    claims_dir = claimfiles.directory(config.layout)
    strays = [os.path.join(claims_dir, f".{INSTANCE}.1.claim.tmp-41-9f3a0c1d"),
              os.path.join(config.layout.meta, ".instance-registry.json.xlock.tmp-42-0011aabb")]
    foreign = os.path.join(claims_dir, ".notes.txt.tmp-43-12345678")  # not a claim file's: not ours
    old = time.time() - 3 * 3600
    for path in [*strays, foreign]:
        with open(path, "wb") as file:
            file.write(b"{")
        os.utime(path, (old, old))
    ctx = Context(config.layout)
    found = temps.find_temps(ctx)
    assert sorted(problem.path for problem in found) == sorted(strays)
    for problem in found:
        assert temps.fix_temp(ctx, problem).startswith("removed")
    assert sorted(os.listdir(claims_dir)) == sorted([f"{INSTANCE}.1.claim", os.path.basename(foreign)])


def test_a_link_planted_as_the_owner_file_is_refused_before_anything_is_written(setup):
    config, registry = setup
    os.makedirs(registry.meta_dir)
    os.symlink("/etc/passwd", registry.owner_path)
    with pytest.raises(DataError) as refused:
        claims.acquire(registry, INSTANCE, port=8188, listen="0.0.0.0", lease=1)
    assert "instance-registry.json.xlock" in refused.value.lines()[0] and "symbolic link" in refused.value.lines()[0]
    assert not os.path.exists(registry.path) and not os.path.exists(claimfiles.directory(config.layout))
