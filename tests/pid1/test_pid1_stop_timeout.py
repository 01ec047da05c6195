"""A ComfyUI that ignores SIGINT is killed once COMFY_STOP_TIMEOUT has passed, and not before."""

import os
import signal
import time

import pytest

pytestmark = [pytest.mark.pid1, pytest.mark.usefixtures("pid_namespace")]

STOP_TIMEOUT = 1.0


def test_child_ignoring_sigint_is_killed_after_the_stop_timeout(setup, launch):
    run = launch(setup.env(COMFY_STOP_TIMEOUT=STOP_TIMEOUT, STANDIN_IGNORE_SIGINT=1))
    run.wait_ready()
    comfyui = list(run.processes())  # host pids of ComfyUI and whatever it started

    sent = run.send(signal.SIGTERM)
    status = run.wait(timeout=STOP_TIMEOUT + 10)
    took = time.monotonic() - sent
    print(f"exit {status} {took:.3f} s after SIGTERM (stop timeout {STOP_TIMEOUT:g} s)")

    assert status == 128 + signal.SIGKILL, run.output()
    assert took >= STOP_TIMEOUT * 0.95, "SIGKILL came before the stop timeout"
    assert took < STOP_TIMEOUT + 5, run.output()
    assert setup.events("graceful_exit") == []
    assert "did not stop within 1 s: SIGKILL" in run.stderr()
    assert comfyui and not [pid for pid in comfyui if os.path.exists(f"/proc/{pid}")]
    assert setup.instance_id not in setup.registry()["claims"]
