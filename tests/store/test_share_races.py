"""Races across two sshfs mounts of one directory (tests/support/sshfs.py), whose flock does not
reach from one mount to the other: registry writes, claim-file creation, a takeover of a stale
claim, and the fencing of a frozen holder."""

import json
import os
import signal
import subprocess
import sys
import time

from comfy_init.store import claimfiles
from tests.store.test_claim_files import INSTANCE, config_for, finish, foreign_record, race
from tests.support.registry_data import registry_at
from tests.support.sshfs import two_mounts  # noqa: F401 (a fixture)

WRITES = r"""
import sys
from comfy_init.layout import Layout
from comfy_init.store.registry import Registry
meta, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
registry = Registry(Layout(meta), lock_timeout=60)
for n in range(count):
    with registry.transaction() as document:
        document["instances"][f"{name}-{n}"] = {"created_at": "2026-12-01T00:00:00Z", "claim_generation": 0}
"""

HOLD = r"""
import sys, time
from comfy_init.boot.config import load_config
from comfy_init.store import claims
from comfy_init.store.registry import Registry
config = load_config({"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "core-1",
                      "COMFY_DATA_DIRECTORY": sys.argv[1]})
claim = claims.acquire(Registry(config.layout), "core-1", port=8188, listen="0.0.0.0", lease=float(sys.argv[2]))
print(claim.generation, flush=True)
while True:
    time.sleep(0.1)
    try:
        claim.renew()
    except claims.LostClaim as lost:
        print(lost.lines()[0], flush=True)
        sys.exit(3)
"""


def data_dirs(mounts):
    return [os.path.join(mounts.a, "data"), os.path.join(mounts.b, "data")]


def test_registry_writes_from_both_mounts_lose_no_update(two_mounts):  # noqa: F811
    count = 40
    writers = [subprocess.Popen([sys.executable, "-c", WRITES, os.path.join(mount, "data"), f"w{n}", str(count)])
               for n, mount in enumerate([two_mounts.a, two_mounts.b] * 2)]
    assert [writer.wait(timeout=120) for writer in writers] == [0] * 4
    document = registry_at(os.path.join(two_mounts.share, "data", "meta")).load()
    assert len(document["instances"]) == 4 * count and document["revision"] == 4 * count
    assert not os.path.exists(os.path.join(two_mounts.share, "data", "meta", "instance-registry.json.xlock"))


def test_contenders_on_both_mounts_creating_one_generation_exactly_one_wins(two_mounts, tmp_path):  # noqa: F811
    dirs = data_dirs(two_mounts)
    os.makedirs(os.path.join(dirs[0], "meta"))
    for generation in (1, 2, 3):
        answers, children = race("create", dirs, tmp_path / f"go-{generation}", json.dumps(foreign_record(generation)))
        finish(children)
        assert sum(answer["won"] for answer in answers) == 1, answers


def test_a_stale_claim_taken_over_from_both_mounts_at_once_has_one_winner(two_mounts, tmp_path):  # noqa: F811
    dirs = data_dirs(two_mounts)
    layout = config_for(dirs[0]).layout
    os.makedirs(claimfiles.directory(layout))
    claimfiles.create(layout, INSTANCE, foreign_record(4))
    answers, children = race("acquire", dirs, tmp_path / "go", contenders=8)
    try:
        winners = [answer for answer in answers if answer["won"]]
        assert len(winners) == 1 and winners[0]["generation"] == 5, answers
        assert claimfiles.generations(layout, INSTANCE) == [5]
    finally:
        assert finish(children) == [0] * 8, "the winner still held its claim at the end"


def test_a_frozen_holder_on_one_mount_is_taken_over_from_the_other_and_fenced(two_mounts):  # noqa: F811
    lease = 3.0  # renewals every lease/3: a loaded machine must not make the live holder look silent
    first_dir, second_dir = data_dirs(two_mounts)
    first = subprocess.Popen([sys.executable, "-c", HOLD, first_dir, str(lease)], stdout=subprocess.PIPE, text=True)
    second = None
    try:
        assert first.stdout.readline().strip() == "1"
        refused = subprocess.run([sys.executable, "-c", HOLD, second_dir, str(lease)], capture_output=True,
                                 text=True, timeout=30)
        assert refused.returncode == 1 and "already running: held by" in refused.stderr, \
            "a live holder on the other mount is refused, though its flock is not seen from here"
        first.send_signal(signal.SIGSTOP)
        time.sleep(lease + 0.5)
        second = subprocess.Popen([sys.executable, "-c", HOLD, second_dir, str(lease)], stdout=subprocess.PIPE, text=True)
        assert second.stdout.readline().strip() == "2"
        first.send_signal(signal.SIGCONT)
        assert first.wait(timeout=20) == 3
        assert "lost the claim on instance 'core-1' (generation 1)" in first.stdout.read()
        newest = claimfiles.newest(config_for(first_dir).layout, INSTANCE)
        assert newest[0] == 2 and newest[1]["pid"] == second.pid, "the fenced holder wrote nothing"
    finally:
        for child in (first, second):
            if child is not None:
                child.kill()
                child.wait()
