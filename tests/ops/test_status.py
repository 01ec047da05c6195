"""`comfy-init status` on a tree with one instance of every kind: running here (a real `comfy-init
run` with the stand-in), stopped, a stale claim, a claim of another host (hand-written), and one
running here that never answers (its lock held by another process, its port a socket that
accepts and never replies)."""

import json
import re
import socket
import subprocess
import sys

import pytest

from comfy_init.layout import Layout
from comfy_init.store.clock import utc_now
from comfy_init.store.hostid import identity
from comfy_init.store.registry import Registry
from tests.support.ports import free_port
from tests.support.processes import ComfyInitProcess, descendants, instance_env
from tests.support.registry_data import claim, flock_held_elsewhere
from tests.support.standin import STANDIN_DIR
from tests.test_results import ENVELOPE_KEYS, PROBLEM_KEYS

CLI = [sys.executable, "-m", "comfy_init"]
VRAM = 8 * 2**30


def cli(*args, timeout=60):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout)


def write_claim(data, instance_id, **fields):
    with Registry(Layout(str(data))).transaction() as document:
        document["instances"].setdefault(instance_id, {"created_at": utc_now(), "claim_generation": 3})
        document["claims"][instance_id] = claim(**fields)


@pytest.fixture
def mixed_tree(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    for instance_id, extra in (("live-1", ["--port", str(port)]), ("idle-1", [])):
        created = cli("instance", "create", instance_id, "--variant", "cpu", *extra, "--data", str(data))
        assert created.returncode == 0, created.stderr
    me = identity()
    now = utc_now()
    write_claim(data, "far-1", host="far-node", boot_id="another-boot", renewed_at=now, port=8190)
    write_claim(data, "stale-1", host=me["host"], boot_id=me["boot_id"], container_id=me["container_id"],
                renewed_at=now, port=free_port(), holds_lock=True)  # its lock is free: the holder is gone
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)  # connections are accepted by the kernel; nobody ever reads or answers
    write_claim(data, "mute-1", host=me["host"], boot_id=me["boot_id"], container_id=me["container_id"],
                renewed_at=now, port=mute.getsockname()[1], listen="127.0.0.1", holds_lock=True)
    (data / "meta" / "locks").mkdir(exist_ok=True)
    env = instance_env(instance_id="live-1", data=data, app=STANDIN_DIR, port=port,
                       STANDIN_VRAM_TOTAL=VRAM, STANDIN_QUEUE_PENDING=3)
    run = ComfyInitProcess(env, tmp_path).start()
    try:
        with flock_held_elsewhere(data / "meta" / "locks" / "mute-1.lock"):
            run.wait_ready()
            yield data, run
    finally:
        mute.close()
        assert run.stop() == 0, run.output()


def rows_of(envelope):
    return {row["id"]: row for row in envelope["data"]["instances"]}


def test_every_kind_of_instance_is_shown_as_what_it_is(mixed_tree):
    data, run = mixed_tree
    result = cli("status", "--json", "--timeout", "1", "--data", str(data))
    assert result.returncode == 0, result.stderr
    envelope = json.loads(result.stdout)
    assert set(envelope) == ENVELOPE_KEYS and envelope["command"] == "status" and envelope["problems"] == []
    rows = rows_of(envelope)
    assert {i: r["state"] for i, r in rows.items()} == {
        "live-1": "running here", "idle-1": "stopped", "far-1": "running on another host",
        "stale-1": "stale claim", "mute-1": "running here"}
    live = rows["live-1"]
    assert (live["health"], live["probed"], live["port"]) == ("ok", True, run.port)
    assert live["comfyui_version"] and live["uptime_seconds"] is not None and live["holder"]["pid"] == run.pid
    assert live["devices"] == [{"name": "cpu", "type": "cpu", "index": None, "vram_total": VRAM,
                                "vram_free": VRAM * 3 // 4}]
    assert live["queue"] == {"running": 0, "pending": 3}
    # ComfyUI's whole tree: the stand-in below comfy-init, its memory and a CPU share measured.
    assert live["processes"] == len(descendants(run.pid)) >= 1
    assert live["memory_bytes"] > 1024 * 1024 and live["cpu_percent"] >= 0
    mute = rows["mute-1"]
    assert (mute["health"], mute["probed"], mute["comfyui_version"], mute["queue"]) == ("no answer", True, None, None)
    assert "no answer within 1 s" in mute["detail"]
    assert mute["processes"] == 0  # the lock holder started nothing
    for instance_id in ("idle-1", "far-1", "stale-1"):
        row = rows[instance_id]
        assert (row["probed"], row["health"], row["cpu_percent"], row["memory_bytes"]) == (False, None, None, None)
    assert rows["far-1"]["holder"]["host"] == "far-node" and rows["far-1"]["uptime_seconds"] is not None
    assert rows["stale-1"]["uptime_seconds"] is None and rows["idle-1"]["holder"] is None


def test_the_table_has_a_line_per_instance_with_its_state(mixed_tree):
    data, run = mixed_tree
    result = cli("status", "--timeout", "1", "--data", str(data))
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "PORT", "HEALTH", "UPTIME", "VERSION", "DEVICES", "VRAM", "QUEUE",
                              "CPU", "MEM"]
    rows = {cells[0]: dict(zip(header.split(), cells)) for cells in (re.split(r" {2,}", line) for line in lines)}
    assert set(rows) == {"live-1", "idle-1", "far-1", "stale-1", "mute-1"}
    live = rows["live-1"]
    assert (live["STATE"], live["PORT"], live["HEALTH"], live["DEVICES"]) == ("running here", str(run.port), "ok", "cpu")
    assert (live["VRAM"], live["QUEUE"]) == ("2.0G/8.0G", "3") and live["CPU"].endswith("%") and live["MEM"][-1] in "KMG"
    assert (rows["mute-1"]["STATE"], rows["mute-1"]["HEALTH"], rows["mute-1"]["VERSION"]) == ("running here", "no answer", "-")
    assert (rows["far-1"]["STATE"], rows["far-1"]["PORT"], rows["far-1"]["HEALTH"]) == ("running on another host", "8190", "-")
    assert (rows["stale-1"]["STATE"], rows["idle-1"]["STATE"]) == ("stale claim", "stopped")


def test_watch_without_a_terminal_prints_one_envelope_per_line(mixed_tree):
    data, _ = mixed_tree
    watch = subprocess.Popen(CLI + ["status", "--json", "--watch", "0.5", "--timeout", "0.3", "--data", str(data)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        frames = [json.loads(watch.stdout.readline()) for _ in range(2)]
    finally:
        watch.send_signal(2)  # Ctrl-C ends the watch with exit 0
        assert watch.wait(timeout=20) == 0, watch.stderr.read()
    assert [f["command"] for f in frames] == ["status", "status"]
    assert all(rows_of(f)["live-1"]["health"] == "ok" for f in frames)
    # The second frame's CPU share is measured since the first.
    assert rows_of(frames[1])["live-1"]["cpu_percent"] >= 0


@pytest.mark.parametrize("args, named", [(["--watch", "0"], "--watch '0'"), (["--watch", "soon"], "--watch 'soon'"),
                                         (["--timeout", "-1"], "--timeout '-1'")])
def test_a_bad_number_is_one_line_naming_it_and_the_fix_exit_64(tmp_path, args, named):
    result = cli("status", *args, "--data", str(tmp_path))
    assert result.returncode == 64 and result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()] and named in result.stderr and "e.g." in result.stderr
    envelope = json.loads(cli("status", *args, "--json", "--data", str(tmp_path)).stdout)
    assert envelope["exit_code"] == 64 and [set(p) for p in envelope["problems"]] == [PROBLEM_KEYS]


def test_an_empty_tree_and_a_missing_one(tmp_path):
    result = cli("status", "--data", str(tmp_path))
    assert result.returncode == 0 and "no instances" in result.stdout
    missing = cli("status", "--json", "--data", str(tmp_path / "nope"))
    assert missing.returncode == 66 and json.loads(missing.stdout)["problems"][0]["kind"] == "missing-path"


def test_watch_on_a_terminal_redraws_in_place(tmp_path):
    import os
    import pty
    import signal

    from tests.support.processes import spawn
    from tests.support.waiting import wait_until

    master, slave = pty.openpty()
    watch = spawn(CLI + ["status", "--watch", "0.5", "--data", str(tmp_path)], stdin=slave, stdout=slave,
                  stderr=slave, close_fds=True)
    os.close(slave)
    seen = bytearray()

    def two_frames():
        seen.extend(os.read(master, 65536))
        return seen.count(b"\x1b[H\x1b[J") >= 2
    try:
        wait_until(two_frames, timeout=30)
    finally:
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=20) == 0
        os.close(master)
    frames = bytes(seen).split(b"\x1b[H\x1b[J")[1:]
    assert all(b"no instances" in frame and b"every 0.5 s (Ctrl-C ends)" in frame for frame in frames[:2])
