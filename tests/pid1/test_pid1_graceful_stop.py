"""SIGTERM to PID 1 is a graceful stop, however early it comes: exit 0, nothing left behind.

Four moments: before comfy-init has started ComfyUI (it then never starts it), 100 ms after the
container started (on a fast machine that is around the moment ComfyUI is started), while ComfyUI
is still starting (it has no graceful stop yet: SIGINT ends it with KeyboardInterrupt, as it ends
the real ComfyUI during its 20 s start-up), and once ComfyUI is ready.
"""

import signal
import time

import pytest

pytestmark = [pytest.mark.pid1, pytest.mark.usefixtures("pid_namespace")]

STOP_TIMEOUT = 5.0
EARLY = 0.1  # "a SIGTERM 100 ms after the container starts must not be lost"


def _comfyui_runs(setup):
    """pid -> what the stand-in logged about that run: 'started', 'serving', 'graceful_exit'."""
    runs = {}
    for event in setup.events():
        runs.setdefault(event["pid"], set()).add(event["event"])
    return runs


def test_sigterm_before_comfyui_starts_means_it_never_starts(setup, launch):
    run = launch(setup.env(COMFY_STOP_TIMEOUT=STOP_TIMEOUT))
    # The earliest moment a signal can count: the kernel drops a signal that reaches a PID 1 with
    # no handler for it, and no program handles one before its first instruction runs.
    run.wait_handlers()
    sent = run.send(signal.SIGTERM)
    print(f"SIGTERM sent {(sent - run.started_at) * 1000:.0f} ms after start")

    status = run.wait(timeout=STOP_TIMEOUT + 10)

    assert status == 0, run.output()
    assert time.monotonic() - sent < STOP_TIMEOUT
    assert setup.events() == [], "ComfyUI must not be started once a stop was asked for"
    assert "stop requested before ComfyUI started" in run.stderr()
    assert setup.temp_files() == []
    assert setup.instance_id not in setup.registry()["claims"]


def test_sigterm_100ms_after_start_stops_cleanly(setup, launch):
    run = launch(setup.env(COMFY_STOP_TIMEOUT=STOP_TIMEOUT))
    run.wait_handlers()
    handler_after = time.monotonic() - run.started_at
    time.sleep(max(0.0, run.started_at + EARLY - time.monotonic()))
    sent = run.send(signal.SIGTERM)

    status = run.wait(timeout=STOP_TIMEOUT + 10)
    stop_took = time.monotonic() - sent
    runs = _comfyui_runs(setup)
    spawned = "started ComfyUI" in run.stderr()
    print(f"SIGTERM handler installed {handler_after * 1000:.0f} ms after start; SIGTERM sent at "
          f"{(sent - run.started_at) * 1000:.0f} ms; exit {status} {stop_took:.2f} s later; "
          f"ComfyUI {'was' if spawned else 'was not'} started; stand-in runs: {runs}")

    assert status == 0, (
        f"exit {status}: the SIGTERM reached ComfyUI during its start-up (see "
        f"test_sigterm_while_comfyui_starts_is_still_a_clean_stop)\n{run.output()}")
    assert stop_took < STOP_TIMEOUT, run.output()
    for pid, seen in runs.items():
        # Started and stopped gracefully, or ended by the SIGINT before it served anything.
        assert "graceful_exit" in seen or "serving" not in seen, (pid, seen)
    if all("graceful_exit" in seen for seen in runs.values()):
        # (A ComfyUI ended in the middle of its start-up may leave a temp file: its next start
        # wipes the temp folder.)
        assert setup.temp_files() == [], "the stand-in left temp files behind"
    assert setup.instance_id not in setup.registry()["claims"]


def test_sigterm_while_comfyui_starts_is_still_a_clean_stop(setup, launch):
    """A stop asked for while ComfyUI loads: ComfyUI dies of the SIGINT it was sent, and that is
    the stop the container asked for, so comfy-init reports success (exit 0), not 130."""
    run = launch(setup.env(COMFY_STOP_TIMEOUT=STOP_TIMEOUT, STANDIN_STARTUP_DELAY=3))
    [started] = setup.wait_event("started")
    sent = run.send(signal.SIGTERM)

    status = run.wait(timeout=STOP_TIMEOUT + 5)

    assert time.monotonic() - sent < STOP_TIMEOUT, run.output()
    assert "serving" not in _comfyui_runs(setup)[started["pid"]]
    assert setup.instance_id not in setup.registry()["claims"]
    assert status == 0, (
        f"a SIGTERM during ComfyUI's start-up gave exit {status}: ComfyUI died of the SIGINT that "
        f"comfy-init sent it as the graceful stop\n{run.output()}")


def test_sigterm_after_ready_stops_comfyui_gracefully(setup, launch):
    run = launch(setup.env(COMFY_STOP_TIMEOUT=STOP_TIMEOUT))
    stats = run.wait_ready()
    assert setup.instance_id in setup.registry()["claims"]
    temp = setup.instance_dir / "temp"
    assert temp.is_dir() and setup.temp_files(), "the stand-in writes a marker into its temp folder"

    sent = run.send(signal.SIGTERM)
    status = run.wait(timeout=STOP_TIMEOUT + 5)
    print(f"exit {time.monotonic() - sent:.3f} s after SIGTERM")

    assert status == 0, run.output()
    assert [e["pid"] for e in setup.events("graceful_exit")] == [stats["system"]["pid"]]
    assert not temp.exists(), "ComfyUI's graceful exit removes its temp folder"
    assert setup.instance_id not in setup.registry()["claims"]
    assert "received SIGTERM" in run.stderr()
