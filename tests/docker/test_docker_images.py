"""The three images, built offline from the shipped Dockerfiles: metadata, contents, start-up."""

from __future__ import annotations

import json
import socket

import pytest
import yaml

from tests.docker.helpers import VARIANTS, answers, docker, http_json, make_data_dir, wait_until

pytestmark = pytest.mark.docker


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(image: str) -> dict:
    return json.loads(docker("image", "inspect", "-f", "{{json .Config}}", image).stdout)


@pytest.mark.parametrize("variant", VARIANTS)
def test_image_metadata(test_images, variant):
    cfg = config(test_images[variant])
    assert cfg["Entrypoint"] == ["env", "--block-signal=HUP,INT,QUIT,TERM,USR1,USR2,WINCH", "comfy-init", "run"]
    assert not cfg.get("Cmd"), "the base image's CMD must not become ComfyUI arguments"
    assert cfg["Healthcheck"]["Test"] == ["CMD", "comfy-init", "health"]
    assert cfg["Healthcheck"]["StartPeriod"] >= 30 * 10**9, "ComfyUI needs ~20 s before it answers"
    assert cfg["StopSignal"] == "SIGTERM"
    assert "8188/tcp" in cfg["ExposedPorts"]
    assert "/data" in cfg["Volumes"]
    env = dict(item.split("=", 1) for item in cfg["Env"])
    assert env["COMFY_APP_DIRECTORY"] == "/opt/comfyui"
    assert env["COMFY_DATA_DIRECTORY"] == "/data"
    assert env.get("COMFY_DEVICE") == ("cpu" if variant == "cpu" else None)
    assert cfg["Labels"]["io.comfy-init.variant"] == variant
    assert cfg["Labels"]["org.opencontainers.image.title"] == f"comfy-init {variant}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_comfy_init_and_comfyui_are_installed(test_images, variant):
    script = (
        "import shutil, sys, os; "
        "assert sys.prefix == '/opt/venv', sys.prefix; "
        "assert shutil.which('comfy-init') == '/opt/venv/bin/comfy-init'; "
        "assert os.path.isfile('/opt/comfyui/main.py'); "
        "assert not os.path.exists('/tmp/wheelhouse') and not os.path.exists('/tmp/comfy-init')"
    )
    docker("run", "--rm", "--entrypoint", "python", test_images[variant], "-c", script)
    result = docker("run", "--rm", "--entrypoint", "comfy-init", test_images[variant], "--help")
    assert "run" in result.stdout and "health" in result.stdout


def test_complete_is_built_from_core(test_images):
    """Dockerfile.complete starts FROM the core image: every core layer, in order, then its own."""
    def layers(image):
        return json.loads(docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", image).stdout)
    core, complete = layers(test_images["core"]), layers(test_images["complete"])
    assert complete[:len(core)] == core and len(complete) > len(core)
    labels = config(test_images["complete"])["Labels"]
    assert labels["org.opencontainers.image.base.name"] == test_images["core"]


def test_complete_ships_manager_outside_the_instances(test_images):
    image = test_images["complete"]
    extra_paths = docker("run", "--rm", "--entrypoint", "cat", image,
                         "/opt/comfyui/extra_model_paths.yaml").stdout
    sections = yaml.safe_load(extra_paths)
    (section,) = sections.values()
    assert section["base_path"] == "/opt/comfy-extras"
    assert section["custom_nodes"] == "custom_nodes"
    docker("run", "--rm", "--entrypoint", "test", image,
           "-f", "/opt/comfy-extras/custom_nodes/ComfyUI-Manager/__init__.py")
    # The curated list was installed (the tests' list holds PyYAML), and git is there for the Manager.
    docker("run", "--rm", "--entrypoint", "python", image, "-c", "import yaml")
    docker("run", "--rm", "--entrypoint", "git", image, "--version")


def build_file(image: str, fresh: bool = False) -> dict:
    """The image's build tag (/opt/venv/comfy-init-build.json), or what buildinfo finds in it now."""
    if fresh:
        argv = ["python", "-m", "comfy_init.venv.buildinfo", "--comfyui-dir", "/opt/comfyui"]
    else:
        argv = ["cat", "/opt/venv/comfy-init-build.json"]
    return json.loads(docker("run", "--rm", "--entrypoint", argv[0], image, *argv[1:]).stdout)


def test_complete_writes_its_own_build_tag(test_images):
    """complete installs packages after core wrote its tag: its tag must describe what it holds, or
    an instance moved from a core to a complete container would keep an environment made for core."""
    core, complete = build_file(test_images["core"]), build_file(test_images["complete"])
    assert complete["packages_digest"] == build_file(test_images["complete"], fresh=True)["packages_digest"]
    assert complete["packages_digest"] != core["packages_digest"]  # the curated list added PyYAML
    assert set(core["protected"]) <= set(complete["protected"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_image_starts_healthy_without_a_gpu(test_images, variant, containers, tmp_path):
    """Each image runs ComfyUI (the stand-in) under comfy-init; core/complete fall back to the CPU."""
    data = make_data_dir(tmp_path / "data")
    port = free_port()
    container = containers.run(
        test_images[variant], name=variant, data=data, ports=[port],
        env={"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": f"solo-{variant}", "COMFY_PORT": str(port)},
    )
    wait_until(lambda: answers(port), 60, message=f"{variant} answers")
    cmdline = [w for w in container.exec("cat", "/proc/1/cmdline").stdout.split("\0") if w]
    assert any(w.endswith("/comfy-init") or w == "comfy-init" for w in cmdline[:2]), cmdline
    stats = http_json(port, "/system_stats")
    assert stats["devices"][0]["type"] == "cpu", "no GPU here: auto must pick the CPU"
    container.wait_healthy(timeout=60)
    assert container.stop() < 8
    assert container.exit_code() == 0
    container.assert_clean_logs()
