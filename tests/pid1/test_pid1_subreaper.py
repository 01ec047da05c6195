"""Not PID 1 (no PID namespace): comfy-init becomes a child subreaper, so ComfyUI's orphans are
still handed to it, and it reaps them."""

import signal
import time

import pytest
from tests.support.pid1 import zombies
from tests.support.processes import process_table

pytestmark = pytest.mark.pid1  # runs without unshare: no pid_namespace fixture

ORPHANS = 100
ORPHAN_SLEEP = 1.0
LOOK_AFTER = 2.0


def test_orphans_are_reparented_to_comfy_init_and_reaped(setup, launch):
    run = launch(setup.env(STANDIN_ORPHANS=ORPHANS, STANDIN_ORPHAN_SLEEP=ORPHAN_SLEEP), namespace=False)
    stats = run.wait_ready()
    [made] = setup.wait_event("orphans_spawned")
    comfy_init = run.proc.pid
    comfyui = stats["system"]["pid"]  # no namespace: the stand-in's pid is a host pid

    table = process_table()
    adopted = [pid for pid, (ppid, _state) in table.items() if ppid == comfy_init and pid != comfyui]
    print(f"{len(adopted)} orphans re-parented to comfy-init {time.time() - made['time']:.2f} s "
          f"after they were made")
    assert len(adopted) == ORPHANS, "ComfyUI's orphans must be handed to comfy-init, not to PID 1"
    assert "cannot become a child subreaper" not in run.stderr()

    time.sleep(max(0.0, made["time"] + LOOK_AFTER - time.time()))
    below = run.processes()
    assert zombies(below) == [], f"zombies under comfy-init: {zombies(below)}"
    assert set(below) == {comfyui}, "the orphans are gone, ComfyUI remains"

    run.send(signal.SIGTERM)
    assert run.wait(timeout=10) == 0, run.output()
