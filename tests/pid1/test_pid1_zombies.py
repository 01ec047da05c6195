"""Orphans that ComfyUI leaves behind are re-parented to PID 1, and PID 1 must reap them.

The control run puts a plain Python in comfy-init's place (it waits for its own child only, as
most programs do) and shows that the same stand-in really leaves zombies behind: without it, a
zero-zombie result would prove nothing.
"""

import signal
import sys
import time

import pytest
from tests.support.pid1 import ComfyInit, namespace_processes, zombies

pytestmark = [pytest.mark.pid1, pytest.mark.usefixtures("pid_namespace")]

ORPHANS = 100
ORPHAN_SLEEP = 0.5
LOOK_AFTER = 2.0  # seconds after the orphans were made

# PID 1 that only ever waits for the child it started.
NAIVE_INIT = """\
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable] + sys.argv[1:])
os.waitpid(pid, 0)
"""


def _orphans_env(setup, **extra):
    return setup.env(STANDIN_ORPHANS=ORPHANS, STANDIN_ORPHAN_SLEEP=ORPHAN_SLEEP, **extra)


def _zombies_after_orphans(setup, run):
    """Wait for the orphans, then LOOK_AFTER seconds; return (zombies, processes) of the namespace."""
    [made] = setup.wait_event("orphans_spawned")
    assert made["count"] == ORPHANS
    time.sleep(max(0.0, made["time"] + LOOK_AFTER - time.time()))
    processes = namespace_processes(run.init_pid)
    return zombies(processes), processes


def test_comfy_init_reaps_orphans_of_comfyui(setup, launch):
    run = launch(_orphans_env(setup))
    run.wait_ready()

    found, processes = _zombies_after_orphans(setup, run)
    print(f"namespace {LOOK_AFTER:g} s after {ORPHANS} orphans: {len(processes)} processes, "
          f"{len(found)} zombies")

    assert found == [], f"zombies in the namespace: {found}"
    run.send(signal.SIGTERM)
    assert run.wait(timeout=10) == 0, run.output()


def test_control_a_naive_pid1_leaves_the_zombies(setup, tmp_path):
    base = tmp_path / "control-base"
    (base / "custom_nodes").mkdir(parents=True)
    standin = [str(setup.app / "main.py"), "--listen", "127.0.0.1", "--port", str(setup.port),
               "--base-directory", str(base), "--database-url", "sqlite:///:memory:", "--cpu"]
    run = ComfyInit(_orphans_env(setup), tmp_path, name="naive-init", marker=b"os.waitpid",
                    argv=[sys.executable, "-c", NAIVE_INIT, *standin])
    run.start()
    try:
        found, processes = _zombies_after_orphans(setup, run)
        print(f"naive PID 1, {LOOK_AFTER:g} s after {ORPHANS} orphans: {len(processes)} processes, "
              f"{len(found)} zombies")
        assert len(found) == ORPHANS, "the stand-in's orphans must stay zombies under a naive PID 1"
        assert all(processes[pid][0] == run.init_pid for pid in found), "re-parented to PID 1"
    finally:
        run.kill()

