"""./comfy-stack, run as a user would: offline, profile multi-cpu, from outside the checkout.

`up` must build what it needs, say that it starts the stand-in, leave both instances healthy and
print their URLs; `ps` and `logs` go through it; `down` must leave no container and no network.
The compose command it picks is checked with fake `docker`/`docker-compose` commands.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.docker.helpers import (
    ROOT,
    answers,
    compose_container,
    docker,
    http_json,
    require_free_ports,
)

pytestmark = pytest.mark.docker

STACK = ROOT / "comfy-stack"
PORTS = {"cpu-1": 8191, "cpu-2": 8192}
PUID, PGID = 4242, 4343
# What compose reads: the test sets the ones that matter and drops the rest, so a developer's
# environment cannot change the outcome (compose/.env values are overridden by these).
COMPOSE_VARIABLES = ("COMFY_DATA_PATH", "COMFY_CORE_IMAGE", "COMFY_COMPLETE_IMAGE", "COMFY_CPU_IMAGE",
                     "PUID", "PGID", "CLI_ARGS", "COMPOSE_PROJECT_NAME", "COMFYUI_SOURCE_DIR",
                     "COMFY_STACK_COMPOSE")


def stack(*args: str, env: dict, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run([str(STACK), *args], capture_output=True, text=True, timeout=timeout,
                            env=env, cwd=cwd)
    print(f"$ comfy-stack {' '.join(args)}  (exit {result.returncode})\n{result.stdout}{result.stderr}")
    return result


@pytest.fixture
def stack_env(tmp_path, docker_engine) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARIABLES}
    env.update({
        "COMPOSE_PROJECT_NAME": f"comfystack{os.getpid()}",
        # Not created yet: the script creates it and gives it to PUID/PGID.
        "COMFY_DATA_PATH": str(tmp_path / "stack-data"),
        "PUID": str(PUID),
        "PGID": str(PGID),
        "CLI_ARGS": "",
    })
    return env


def project_leftovers(project: str) -> tuple[list[str], list[str]]:
    containers = docker("ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={project}").stdout.split()
    networks = [name for name in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
                if name.startswith(f"{project}_")]
    return containers, networks


def test_up_offline_multi_cpu_then_down(stack_env, tmp_path):
    require_free_ports(*PORTS.values())
    project = stack_env["COMPOSE_PROJECT_NAME"]
    data = Path(stack_env["COMFY_DATA_PATH"])
    try:
        up = stack("up", "--offline", "--profile", "multi-cpu", env=stack_env, cwd=tmp_path)
        assert up.returncode == 0, up.stdout + up.stderr
        output = up.stdout + up.stderr
        assert "STAND-IN" in output, "offline without COMFYUI_SOURCE_DIR must say it starts the stand-in"
        for service, port in PORTS.items():
            assert f"http://localhost:{port}/" in output
            container = compose_container(project, service)
            assert container.health() == "healthy", f"{service} is not healthy when up returns"
            assert container.inspect("{{.Config.Image}}") == "comfy-init-standin/cpu:latest"
            assert answers(port)
            assert http_json(port, "/system_stats")["system"]["argv"], service
            # The instance's own folders belong to PUID/PGID (comfy-init gives them away).
            output_dir = data / "instances" / service / "output"
            assert (output_dir.stat().st_uid, output_dir.stat().st_gid) == (PUID, PGID)
        # The data directory was made by the script, for PUID/PGID, not by Docker for root.
        assert (data.stat().st_uid, data.stat().st_gid) == (PUID, PGID)

        ps = stack("ps", env=stack_env, cwd=tmp_path)
        assert ps.returncode == 0
        for service in PORTS:
            assert f"{project}_{service}_1" in ps.stdout or f"{project}-{service}-1" in ps.stdout
        logs = stack("logs", "cpu-2", env=stack_env, cwd=tmp_path)
        assert logs.returncode == 0
        assert "comfy-init[cpu-2]" in logs.stdout and "comfy-init[cpu-1]" not in logs.stdout
    finally:
        down = stack("down", env=stack_env, cwd=tmp_path, timeout=180)
    assert down.returncode == 0, down.stdout + down.stderr
    containers, networks = project_leftovers(project)
    assert not containers, f"containers left behind by down: {containers}"
    assert not networks, f"networks left behind by down: {networks}"
    assert (data / "meta" / "instance-registry.json").is_file(), "down keeps the data directory"


# --- which compose ----------------------------------------------------------------------------------


def fake_path(bin_dir: Path, compose_version: str | None) -> str:
    """A PATH of one folder: every tool of the real PATH but docker*, a `docker` whose engine answers
    but that has no compose plugin, and a docker-compose that prints `compose_version` (None: none)."""
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = bin_dir / entry.name
            if not entry.name.startswith("docker") and not link.exists() and not link.is_symlink():
                link.symlink_to(entry.path)
    (bin_dir / "docker").write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  info) exit 0 ;;\n"
        "  compose) echo \"unknown shorthand flag: 'f' in -f\" >&2; exit 125 ;;\n"
        "esac\nexit 1\n")
    (bin_dir / "docker").chmod(0o755)
    if compose_version is not None:
        (bin_dir / "docker-compose").write_text(
            f'#!/bin/sh\n[ "$1" = version ] && [ -n "{compose_version}" ] && echo "{compose_version}" && exit 0\n'
            "exit 1\n")
        (bin_dir / "docker-compose").chmod(0o755)
    return str(bin_dir)


@pytest.mark.parametrize("compose_version, message", [
    (None, "apt-get install docker-compose"),
    ("", "`docker-compose version` fails"),
    ("1.25.0", "1.28 or newer"),
])
def test_names_what_to_install_without_a_usable_compose(tmp_path, compose_version, message):
    env = {**{k: v for k, v in os.environ.items() if k not in COMPOSE_VARIABLES},
           "PATH": fake_path(tmp_path / "bin", compose_version)}
    result = stack("ps", env=env, cwd=tmp_path, timeout=30)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Compose v2 plugin" in result.stderr


def test_picks_docker_compose_v1_when_the_plugin_is_missing(tmp_path, stack_env):
    """The real docker-compose here (1.29) is chosen when `docker compose` does not work."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real_docker = subprocess.run(["sh", "-c", "command -v docker"], capture_output=True, text=True).stdout.strip()
    (bin_dir / "docker").write_text(
        f'#!/bin/sh\n[ "$1" = compose ] && {{ echo "unknown command: docker compose" >&2; exit 1; }}\nexec {real_docker} "$@"\n')
    (bin_dir / "docker").chmod(0o755)
    env = {**stack_env, "PATH": os.pathsep.join([str(bin_dir), os.environ["PATH"]])}
    result = stack("ps", env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Name" in result.stdout and "State" in result.stdout  # docker-compose 1.x's table
