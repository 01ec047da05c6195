"""ComfyUI-Manager's restart (exit 0 with <session>.reboot written) starts ComfyUI again, once,
under the same claim: a restart is not a new start of the instance."""

import signal
import time

import pytest

pytestmark = [pytest.mark.pid1, pytest.mark.usefixtures("pid_namespace")]

REBOOT_DELAY = 0.5  # time to read the registry before the restart


def test_manager_restart_starts_comfyui_again_exactly_once(setup, launch, tmp_path):
    marker = tmp_path / "manager-rebooted"  # the stand-in asks for a restart only while it is absent
    run = launch(setup.env(STANDIN_MANAGER_REBOOT=marker, STANDIN_MANAGER_REBOOT_DELAY=REBOOT_DELAY))
    [first] = setup.wait_event("serving")
    claim_before = setup.registry()["claims"][setup.instance_id]
    generation_before = setup.registry()["instances"][setup.instance_id]["claim_generation"]

    setup.wait_event("serving", count=2)
    stats = run.wait_ready()
    time.sleep(REBOOT_DELAY + 0.5)  # a second restart would have begun by now

    started = setup.events("started")
    assert len(started) == 2, started
    assert started[0]["pid"] != started[1]["pid"] == stats["system"]["pid"]
    assert [e["pid"] for e in setup.events("reboot_requested")] == [first["pid"]]
    assert marker.exists()
    assert not setup.session_reboot_file.exists(), "comfy-init removes the .reboot file it acted on"
    assert run.stderr().count("ComfyUI-Manager asked for a restart") == 1

    claim_after = setup.registry()["claims"][setup.instance_id]
    assert claim_after["token"] == claim_before["token"]
    assert claim_after["generation"] == claim_before["generation"]
    assert setup.registry()["instances"][setup.instance_id]["claim_generation"] == generation_before

    run.send(signal.SIGTERM)
    assert run.wait(timeout=10) == 0, run.output()
    assert len(setup.events("started")) == 2
    assert [e["pid"] for e in setup.events("graceful_exit")] == [started[1]["pid"]]


def test_a_stale_restart_request_does_not_restart_a_normal_exit(setup, launch):
    # A .reboot left by an earlier life of the instance (the container was killed right after
    # ComfyUI-Manager wrote it) must not turn this life's normal exit into a restart.
    setup.session_reboot_file.parent.mkdir(parents=True, exist_ok=True)
    setup.session_reboot_file.write_text("")
    run = launch(setup.env(STANDIN_EXIT_CODE=0))
    assert run.wait(timeout=15) == 0, run.output()
    assert len(setup.events("started")) == 1
    assert "asked for a restart" not in run.stderr()
    assert not setup.session_reboot_file.exists()
