"""The same checks on an image built with a real ComfyUI, when one is provided.

CI builds its images offline with the stand-in (no torch, no PyPI inside builds). On a machine with
network access, build a real image from the shipped Dockerfile and name it:

    docker build -f docker/Dockerfile.cpu -t comfy-init/cpu:real .
    COMFY_INIT_REAL_IMAGE=comfy-init/cpu:real python -m pytest tests/docker/test_docker_real_comfyui.py

Two instances of it then run on one data directory: each must answer, resolve its own custom_nodes
and the shared models, list a model added on the host, and stop gracefully (exit 0) with SIGTERM.
"""

from __future__ import annotations

import os
import socket

import pytest

from tests.docker.helpers import answers, http_json, make_data_dir, wait_until

pytestmark = pytest.mark.docker

REAL_IMAGE = os.environ.get("COMFY_INIT_REAL_IMAGE")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not REAL_IMAGE, reason="COMFY_INIT_REAL_IMAGE names no image built with a real ComfyUI")
def test_two_real_comfyui_instances_share_models(docker_engine, containers, tmp_path):
    data = make_data_dir(tmp_path / "data")
    ports = {"real-1": free_port(), "real-2": free_port()}
    started = {}
    for instance, port in ports.items():
        started[instance] = containers.run(
            REAL_IMAGE, name=instance, data=data, ports=[port],
            env={"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": instance, "COMFY_PORT": port,
                 "COMFY_DEVICE": "cpu"})
    for instance, port in ports.items():
        wait_until(lambda port=port: answers(port), 240, message=f"{instance} answers /system_stats")
    checkpoint = data / "shared" / "models" / "checkpoints" / "added-on-host.safetensors"
    checkpoint.write_bytes(b"not really weights")
    for instance, port in ports.items():
        paths = http_json(port, "/internal/folder_paths")
        assert paths["custom_nodes"][0] == f"/data/instances/{instance}/custom_nodes"
        assert paths["checkpoints"][0] == f"/data/instances/{instance}/models/checkpoints"
        assert "added-on-host.safetensors" in http_json(port, "/models/checkpoints")
        stats = http_json(port, "/system_stats")
        assert "--cpu" in stats["system"]["argv"]
    for instance, container in started.items():
        container.stop(timeout=15)
        assert container.exit_code() == 0, container.logs()
        assert "Traceback" not in container.logs()
