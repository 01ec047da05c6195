"""The complete image on a release with ComfyUI-Manager 4, for real: built offline from
docker/Dockerfile.complete FROM a core image whose stand-in ComfyUI looks like such a release
(build-test-images.sh manager4), so the image holds the REAL comfyui-manager package at the
release's pin. In a container, comfy-init passes --enable-manager, the package migrates nothing but
comfy-init carries the instance's old Manager folder over, and the package's restart (after the
install step it queued) starts ComfyUI again under the same claim."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.docker.helpers import (BUILD_TEST_BASE, BUILD_TEST_IMAGES, answers, docker, free_host_port,
                                  http_json, image_tag, make_data_dir, read_registry, wait_until)
from tests.support.manager import MANAGER_REQUIREMENT

pytestmark = pytest.mark.docker

PUID = 1000
INSTANCE = "m4"


@pytest.fixture(scope="module")
def manager4_image(docker_engine) -> str:
    for command in ([str(BUILD_TEST_BASE)], [str(BUILD_TEST_IMAGES), "manager4"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                                env={**os.environ, "PYTHON": sys.executable})
        sys.stderr.write(result.stdout)
        if result.returncode != 0:
            pytest.fail(f"{command} exited {result.returncode}:\n{result.stdout}{result.stderr}", pytrace=False)
    return image_tag("complete-manager4")


def in_image(image, *command):
    return docker("run", "--rm", "--entrypoint", command[0], image, *command[1:], check=False)


def test_the_image_has_the_pinned_package_and_no_custom_node_manager(manager4_image):
    version = in_image(manager4_image, "python", "-c",
                       "import importlib.metadata as m; print(m.version('comfyui-manager'))")
    assert version.stdout.strip() == MANAGER_REQUIREMENT.split("==")[1]
    assert in_image(manager4_image, "test", "-e", "/opt/comfy-extras/custom_nodes/ComfyUI-Manager").returncode == 1
    for name in ("extra_model_paths.yaml", "extra_paths.yaml"):
        assert in_image(manager4_image, "test", "-e", f"/opt/comfyui/{name}").returncode == 1
    env = json.loads(docker("image", "inspect", "-f", "{{json .Config.Env}}", manager4_image).stdout)
    assert "COMFY_MANAGER=auto" in env


def plant_previous_life(data):
    """What an earlier life of the instance left: the custom-node Manager's folder, and an install
    step the Manager queued for the next start. Owned by ComfyUI's user, as it wrote them."""
    user = data / "instances" / INSTANCE / "user"
    legacy = user / "default" / "ComfyUI-Manager"
    (legacy / "snapshots").mkdir(parents=True)
    (legacy / "snapshots" / "before.json").write_text("{}")
    (legacy / "config.ini").write_text("[default]\nsecurity_level = normal-\nfile_logging = false\n")
    scripts = user / "__manager" / "startup-scripts"
    scripts.mkdir(parents=True)
    step = [f"/data/instances/{INSTANCE}/custom_nodes", "#FORCE", "/opt/venv/bin/python", "-c",
            f"open('/data/instances/{INSTANCE}/user/step-ran', 'a').write('ran\\n')"]
    (scripts / "install-scripts.txt").write_text(repr(step) + "\n")
    subprocess.run(["chown", "-R", f"{PUID}:{PUID}", str(data / "instances")], check=True)
    return user


def test_manager4_runs_for_real_migrates_and_restarts_under_the_same_claim(manager4_image, containers, tmp_path):
    data = make_data_dir(tmp_path / "data")
    user = plant_previous_life(data)
    events = data / "events.jsonl"
    events.touch(mode=0o666)
    events.chmod(0o666)
    port = free_host_port()
    container = containers.run(manager4_image, name="manager4", data=data, ports=[port], env={
        "COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": INSTANCE, "COMFY_PORT": str(port),
        "PUID": str(PUID), "STANDIN_LOG_FILE": "/data/events.jsonl"})
    wait_until(lambda: answers(port), 240, message="ComfyUI answers after the Manager's restart")
    stats = http_json(port, "/system_stats")
    assert "--enable-manager" in stats["system"]["argv"] and stats["system"]["uid"] == PUID

    started = [json.loads(line) for line in events.read_text().splitlines() if '"started"' in line]
    assert len(started) == 2, started
    logs = container.logs()
    assert logs.count("ComfyUI-Manager asked for a restart") == 1
    assert (user / "step-ran").read_text() == "ran\n"
    assert not (user / "__manager" / "startup-scripts" / "install-scripts.txt").exists()
    assert not (user / "comfy-init-session.reboot").exists()
    # The old folder went into this instance's own __manager, owned by ComfyUI's user:
    migrated = user / "__manager" / "config.ini"
    assert "security_level = normal\n" in migrated.read_text()
    assert os.stat(migrated).st_uid == PUID and os.stat(user / "__manager").st_uid == PUID
    assert (user / "__manager" / ".legacy-manager-backup" / "snapshots" / "before.json").exists()
    assert not (user / "default" / "ComfyUI-Manager").exists()
    assert f"** ComfyUI-Manager config path: /data/instances/{INSTANCE}/user/__manager/config.ini" in logs
    assert "Log path: file logging is disabled" in logs, "the real Manager read the migrated config"
    # One claim for both starts: the restart is not a new start of the instance.
    assert logs.count(f"claimed instance {INSTANCE!r}") == 1
    assert INSTANCE in read_registry(data)["claims"]

    assert container.stop() < 10
    assert container.exit_code() == 0
