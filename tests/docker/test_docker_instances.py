"""Instance management with real containers: `comfy-init instance create`, `comfy-init compose`,
then the generated file beside the shipped one, as the CLI tells users to run it:

    docker-compose -f compose/docker-compose.yml -f <data>/meta/compose.instances.yml up -d cpu-7

The container runs on this kernel, so `instance list` on the host sees its claim (our boot id) and
its lock held from the container's side: "running here", and its /system_stats answers on the
published port. Also the `tools` service: the same CLI in a one-off container on the same data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docker.helpers import (
    COMPOSE_FILE,
    compose_container,
    compose_files,
    compose_variables,
    free_host_port,
    make_data_dir,
    project_containers,
    read_registry,
    wait_until,
)

pytestmark = pytest.mark.docker

INSTANCE = "cpu-7"
DIFFERS = "but the registry configures"  # run's warning when a container differs from the registry


def cli(data: Path, *args: str) -> subprocess.CompletedProcess:
    """The comfy-init CLI of this checkout on the host, about the data tree `data`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFY_")}
    return subprocess.run([sys.executable, "-m", "comfy_init", *args, "--data", str(data)],
                          capture_output=True, text=True, timeout=60, env=env)


def cli_json(data: Path, *args: str) -> dict:
    result = cli(data, *args, "--json")
    document = json.loads(result.stdout)
    assert document["exit_code"] == result.returncode, result.stdout + result.stderr
    return document


def rows(data: Path) -> dict[str, dict]:
    document = cli_json(data, "instance", "list", "--timeout", "2")
    assert document["exit_code"] == 0, document
    return {row["id"]: row for row in document["data"]["instances"]}


@pytest.fixture
def instances_project(tmp_path, test_images, docker_compose_project_name):
    """(project name, data directory, compose variables); every container of the project removed
    after the test, whatever the generated file names by then."""
    data = make_data_dir(tmp_path / "data")
    project = f"{docker_compose_project_name}inst"
    env = compose_variables(test_images, data)
    try:
        yield project, data, env
    finally:
        generated = data / "meta" / "compose.instances.yml"
        files = [COMPOSE_FILE, generated] if generated.is_file() else [COMPOSE_FILE]
        compose_files(project, files, "down", "-v", "--remove-orphans", env=env, check=False, timeout=120)
        for container in project_containers(project):  # what `down` could not name any more
            subprocess.run(["docker", "rm", "-f", "-v", container], capture_output=True, timeout=60)


def test_create_compose_up_list_stop_delete(instances_project):
    project, data, env = instances_project
    port = free_host_port()

    created = cli_json(data, "instance", "create", INSTANCE, "--variant", "cpu", "--port", str(port))
    assert created["exit_code"] == 0, created
    assert (created["data"]["config"]["variant"], created["data"]["config"]["port"]) == ("cpu", port)
    written = cli_json(data, "compose")
    generated = data / "meta" / "compose.instances.yml"
    assert written["exit_code"] == 0 and Path(written["data"]["path"]) == generated, written
    assert rows(data)[INSTANCE]["state"] == "stopped"

    compose_files(project, [COMPOSE_FILE, generated], "up", "-d", "--no-build", INSTANCE, env=env)
    container = compose_container(project, INSTANCE)
    # Only the named instance: none of the shipped services came up with it.
    assert project_containers(project) == [container.short_id]
    assert container.inspect("{{json .HostConfig.PortBindings}}") == json.dumps(
        {f"{port}/tcp": [{"HostIp": "", "HostPort": str(port)}]}, separators=(",", ":"))

    def running_and_healthy():
        row = rows(data)[INSTANCE]
        if not container.running():
            raise AssertionError(f"{INSTANCE} exited ({container.exit_code()}):\n{container.logs()[-3000:]}")
        return row if (row["state"], row["health"]) == ("running here", "ok") else None

    row = wait_until(running_and_healthy, 60, interval=0.5, message=f"{INSTANCE} running here, health ok")
    assert row["port"] == port and row["variant"] == "cpu" and row["configured"]
    # The holder is the container: its host name is the container's short id.
    assert row["holder"]["host"] == container.short_id, row["holder"]
    assert row["devices"], "health ok comes with the devices /system_stats names"
    assert read_registry(data)["claims"][INSTANCE]["port"] == port
    logs = container.logs()
    assert DIFFERS not in logs, logs

    # The tools service sees the same: the claim, the held lock, and (host network) the health.
    tools = compose_files(project, [COMPOSE_FILE], "run", "--rm", "-T", "comfy-init",
                          "instance", "list", "--json", env=env, timeout=120)
    from_tools = {r["id"]: r for r in json.loads(tools.stdout)["data"]["instances"]}
    assert (from_tools[INSTANCE]["state"], from_tools[INSTANCE]["health"]) == ("running here", "ok"), from_tools
    assert from_tools[INSTANCE]["holder"]["host"] == container.short_id
    container.assert_clean_logs()

    # A running instance is not deleted, and nothing moves.
    refused = cli_json(data, "instance", "delete", INSTANCE, "--yes")
    assert refused["exit_code"] != 0 and refused["problems"][0]["kind"] == "instance-held", refused
    assert (data / "instances" / INSTANCE).is_dir()

    compose_files(project, [COMPOSE_FILE, generated], "stop", env=env, timeout=120)
    assert not container.running()
    assert container.exit_code() == 0, container.logs()[-3000:]
    row = rows(data)[INSTANCE]
    assert (row["state"], row["holder"], row["health"]) == ("stopped", None, None), row
    assert INSTANCE not in read_registry(data)["claims"]

    deleted = cli_json(data, "instance", "delete", INSTANCE, "--yes")
    assert deleted["exit_code"] == 0, deleted
    trash = Path(deleted["data"]["trash"])
    assert trash.parent == data / "meta" / "trash" and trash.name.startswith(f"{INSTANCE}-"), trash
    assert (trash / "custom_nodes").is_dir() and (trash / "user").is_dir(), "the instance's files moved as they were"
    assert not os.path.lexists(data / "instances" / INSTANCE)
    assert INSTANCE not in read_registry(data)["instances"]
    assert INSTANCE not in rows(data)
    assert (data / "shared" / "models").is_dir(), "shared/ stays"


def test_tools_service_runs_the_cli_on_the_same_data(instances_project):
    """`docker compose run --rm comfy-init instance list`: the registry the host CLI wrote."""
    project, data, env = instances_project
    port = free_host_port()
    created = cli_json(data, "instance", "create", INSTANCE, "--variant", "cpu", "--port", str(port))
    assert created["exit_code"] == 0, created

    result = compose_files(project, [COMPOSE_FILE], "run", "--rm", "-T", "comfy-init",
                           "instance", "list", "--json", env=env, timeout=120)
    document = json.loads(result.stdout)
    listed = {row["id"]: row for row in document["data"]["instances"]}
    assert document["exit_code"] == 0
    assert set(listed) == {INSTANCE}
    assert (listed[INSTANCE]["port"], listed[INSTANCE]["state"]) == (port, "stopped")
    # A one-off container: nothing of the project is left once it has answered.
    assert project_containers(project) == []
