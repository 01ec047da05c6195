"""compose profile multi-cpu: two instances (cpu-1 on 8191, cpu-2 on 8192) on one data directory.

What a user of `docker compose --profile multi-cpu up` relies on: both become healthy, keep their
own custom_nodes/user/temp/output, share the models, stop cleanly and release their claim, come
back after a stop or a SIGKILL, and refuse a second container for an instance that already runs.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.docker.helpers import (
    EX_TEMPFAIL,
    answers,
    host_path,
    http_json,
    read_registry,
    require_free_ports,
    tree_contents,
    tree_owners,
    wait_until,
)

pytestmark = pytest.mark.docker

PER_INSTANCE = ("custom_nodes", "user", "temp", "output")
COMFY_STOP_TIMEOUT = 8  # the compose file's value


def folder_paths(port: int) -> dict:
    return http_json(port, "/internal/folder_paths")


def test_both_instances_healthy_on_their_ports(running):
    for service, port in running.ports.items():
        container = running.container(service)
        assert container.health() == "healthy"
        stats = http_json(port, "/system_stats")
        argv = stats["system"]["argv"]
        assert argv[argv.index("--port") + 1] == str(port)
        assert stats["devices"][0]["type"] == "cpu"
        ok = container.exec("comfy-init", "health", check=False)
        assert ok.returncode == 0, ok.stdout + ok.stderr


def test_pid_1_is_comfy_init(running):
    for service in running.ports:
        cmdline = running.container(service).exec("cat", "/proc/1/cmdline").stdout.split("\0")
        words = [w for w in cmdline if w]
        # `comfy-init run` through its console script: [python, /opt/venv/bin/comfy-init, run]
        assert any(os.path.basename(w) == "comfy-init" for w in words[:2]), words
        assert "run" in words, words
        # ComfyUI is a child of PID 1, not PID 1 itself.
        assert http_json(running.ports[service], "/system_stats")["system"]["pid"] != 1


def test_own_instance_folders_and_shared_models(running):
    paths = {service: folder_paths(port) for service, port in running.ports.items()}
    for service, folders in paths.items():
        base = f"/data/instances/{service}"
        for key in PER_INSTANCE:
            assert folders[key][0].startswith(base + "/"), f"{service} {key}: {folders[key]}"
            assert host_path(running.data, folders[key][0]).resolve().is_relative_to(
                (running.data / "instances" / service).resolve()), f"{service} {key} leaves its instance"
        # The model folders go through the instance's models link into shared/models.
        checkpoints = host_path(running.data, folders["checkpoints"][0]).resolve()
        assert checkpoints == (running.data / "shared" / "models" / "checkpoints").resolve(), checkpoints
        assert host_path(running.data, folders["input"][0]).resolve() == (running.data / "shared" / "input").resolve()
    for key in PER_INSTANCE:
        assert paths["cpu-1"][key] != paths["cpu-2"][key], key


def test_model_added_on_the_host_is_listed_by_both(running):
    checkpoints = running.data / "shared" / "models" / "checkpoints"
    model = checkpoints / "host-added-model.safetensors"
    model.write_bytes(b"not really a model")
    try:
        for service, port in running.ports.items():
            wait_until(lambda port=port: model.name in http_json(port, "/models/checkpoints"), 10,
                       message=f"{service} lists {model.name}")
        listings = [http_json(port, "/models/checkpoints") for port in running.ports.values()]
        assert listings[0] == listings[1]
    finally:
        model.unlink()


def test_stop_releases_the_claim_and_leaves_the_other_instance_alone(running):
    cpu1, cpu2 = running.container("cpu-1"), running.container("cpu-2")
    # Give cpu-2 some output and temp files; cpu-1's graceful stop must not touch them.
    http_json(running.ports["cpu-2"], "/standin/output?name=kept", method="POST")
    http_json(running.ports["cpu-2"], "/standin/temp?name=kept.txt", method="POST")
    cpu2_folders = folder_paths(running.ports["cpu-2"])
    cpu2_temp = host_path(running.data, cpu2_folders["temp"][0])
    cpu2_output = host_path(running.data, cpu2_folders["output"][0])
    before = (tree_contents(cpu2_temp), tree_contents(cpu2_output))
    assert "kept.txt" in before[0] and any(name.startswith("kept_") for name in before[1])
    assert "cpu-1" in read_registry(running.data)["claims"]

    elapsed = cpu1.stop()

    assert cpu1.exit_code() == 0, cpu1.logs()[-3000:]
    assert elapsed < COMFY_STOP_TIMEOUT, f"docker stop took {elapsed:.1f} s: the graceful stop did not work"
    claims = read_registry(running.data)["claims"]
    assert "cpu-1" not in claims, claims
    assert "cpu-2" in claims
    assert (tree_contents(cpu2_temp), tree_contents(cpu2_output)) == before
    assert cpu2.running() and answers(running.ports["cpu-2"])


def test_start_after_stop_is_healthy_again(running):
    cpu1 = running.container("cpu-1")
    cpu1.stop()
    assert cpu1.exit_code() == 0
    cpu1.start()
    cpu1.wait_healthy(timeout=60)
    assert "cpu-1" in read_registry(running.data)["claims"]


def test_second_container_for_a_running_instance_exits_75(running, containers, test_images):
    holder = running.container("cpu-1")
    intruder = containers.run(
        test_images["cpu"], name="intruder", data=running.data,
        env={"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "cpu-1", "COMFY_PORT": "8191"},
    )
    code = intruder.wait_exit(timeout=60)
    logs = intruder.logs()
    assert code == EX_TEMPFAIL, logs
    # The message names the holder: its host name, which is its container's short id.
    assert holder.short_id in logs, logs
    assert "Traceback" not in logs, logs
    # The holder is unaffected.
    assert holder.running() and answers(running.ports["cpu-1"])
    claim = read_registry(running.data)["claims"]["cpu-1"]
    assert claim.get("container_id") in (None, holder.short_id)


def test_sigkill_then_start_is_healthy_again_quickly(running):
    cpu1 = running.container("cpu-1")
    cpu1.kill("KILL")
    wait_until(lambda: not cpu1.running(), 20, message="cpu-1 dies")
    started = time.monotonic()
    if not cpu1.running():  # the restart policy may already have brought it back
        cpu1.start()
    # The dead holder's claim is recognised at once on the same host: no lease to wait out.
    wait_until(lambda: answers(running.ports["cpu-1"]), 15, message="cpu-1 answers after SIGKILL")
    ready_after = time.monotonic() - started
    assert ready_after < 15, f"ready {ready_after:.1f} s after docker start"
    cpu1.wait_healthy(timeout=40)
    assert answers(running.ports["cpu-2"])


def test_puid_pgid_own_what_comfyui_writes(running, containers, test_images):
    models = running.data / "shared" / "models"
    owners_before = tree_owners(models)
    assert owners_before, "shared/models should exist (created by cpu-1/cpu-2)"
    port = 8193
    require_free_ports(port)
    owned = containers.run(
        test_images["cpu"], name="owned", data=running.data, ports=[port],
        env={"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "cpu-owned", "COMFY_PORT": str(port),
             "PUID": "1000", "PGID": "1000"},
    )
    wait_until(lambda: answers(port), 60, message="cpu-owned answers")
    system = http_json(port, "/system_stats")["system"]
    assert (system["uid"], system["gid"]) == (1000, 1000)

    written = http_json(port, "/standin/output?name=owned", method="POST")["path"]
    st = os.stat(host_path(running.data, written))
    assert (st.st_uid, st.st_gid) == (1000, 1000), written

    assert tree_owners(models) == owners_before, "shared/models changed owner"
    assert owned.stop() < COMFY_STOP_TIMEOUT
    assert owned.exit_code() == 0
    owned.assert_clean_logs()
