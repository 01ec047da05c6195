"""compose/stack.yml on a real single-node swarm (`docker swarm init` on the test engine, left
again at the end): task slots become instance ids, scaling releases claims, a SIGKILLed task's
replacement claims its instance at once, or after the lease when the claim says another host."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.docker.helpers import docker, make_data_dir, read_registry, wait_until

pytestmark = pytest.mark.docker

STACK_FILE = Path(__file__).resolve().parents[2] / "compose" / "stack.yml"
LEASE = 4


@pytest.fixture(scope="module")
def swarm():
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    joined = state != "active"
    if joined:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1", timeout=120)
    try:
        yield
    finally:
        if joined:
            docker("swarm", "leave", "--force", check=False, timeout=120)


def _containers(stack, service="cpu"):
    """{slot: container id} of the running tasks of the stack's service."""
    listed = docker("ps", "--filter", f"label=com.docker.swarm.service.name={stack}_{service}",
                    "--format", '{{.ID}} {{.Label "com.docker.swarm.task.name"}}').stdout.split("\n")
    found = {}
    for line in filter(None, listed):
        container, task = line.split()
        found[int(task.split(".")[1])] = container
    return found


def _healthy(container):
    done = docker("inspect", "-f", "{{.State.Health.Status}}", container, check=False)
    return done.returncode == 0 and done.stdout.strip() == "healthy"


@pytest.fixture
def stack(swarm, test_images, tmp_path):
    data = make_data_dir(tmp_path / "data")
    name = f"comfyci{os.getpid()}"
    env = dict(os.environ, COMFY_DATA_PATH=str(data), COMFY_CPU_IMAGE=test_images["cpu"],
               COMFY_CORE_IMAGE=test_images["core"], COMFY_CPU_REPLICAS="3", COMFY_CORE_REPLICAS="0",
               COMFY_CLAIM_LEASE=str(LEASE), PUID="", PGID="", CLI_ARGS="")
    deployed = subprocess.run(["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(STACK_FILE), name],
                              env=env, capture_output=True, text=True, timeout=180)
    assert deployed.returncode == 0, deployed.stderr
    try:
        yield name, data
    finally:
        docker("stack", "rm", name, check=False)
        wait_until(lambda: not docker("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={name}",
                                      check=False).stdout.strip(), timeout=120)
        docker("network", "rm", f"{name}_comfy", check=False)


def _claims(data):
    return read_registry(data).get("claims", {})


def _utc(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def test_slots_claim_distinct_instances_scale_down_and_replace_killed_tasks(stack):
    name, data = stack
    # Three tasks, three instances (cpu-1..3), each answering its health check.
    wait_until(lambda: set(_claims(data)) == {"cpu-1", "cpu-2", "cpu-3"}, timeout=180)
    wait_until(lambda: len(_containers(name)) == 3 and all(map(_healthy, _containers(name).values())), timeout=180)
    for container in _containers(name).values():
        health = docker("exec", container, "comfy-init", "health", "--json", check=False)
        assert health.returncode == 0, health.stdout + health.stderr

    # A SIGKILLed task on this node: its replacement (same slot) claims the instance at once,
    # since the dead holder's lock is free on this kernel.
    first = _claims(data)["cpu-1"]
    docker("kill", "-s", "KILL", _containers(name)[1])
    wait_until(lambda: _claims(data).get("cpu-1", {}).get("generation", 0) > first["generation"], timeout=120)
    replacement = docker("logs", _containers(name)[1], check=False)
    assert "is already running" not in replacement.stdout + replacement.stderr, "it never had to wait"

    # A SIGKILLed task whose claim says another host (as a frozen node's would): the replacement
    # must wait out the lease on that claim before it takes the instance.
    docker("kill", "-s", "KILL", _containers(name)[2])
    from tests.support.registry_data import registry_at

    registry = registry_at(data / "meta")
    with registry.transaction() as document:
        record = document["claims"]["cpu-2"]
        record.update(host="another-node", boot_id="00000000-0000-4000-8000-000000000000", container_id=None,
                      renewed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        planted = dict(record)
    wait_until(lambda: _claims(data).get("cpu-2", {}).get("token") not in (None, planted["token"]), timeout=180)
    taken = _claims(data)["cpu-2"]
    assert _utc(taken["since"]) >= _utc(planted["renewed_at"]) + LEASE, (planted, taken)
    assert taken["generation"] > planted["generation"]

    # Scaled to one: the two stopped tasks release their claims cleanly. Swarm picks which tasks
    # go (here it has kept the oldest and removed the two replacements), so the survivor is
    # whichever slot still runs.
    docker("service", "scale", "--detach", f"{name}_cpu=1")
    (survivor,) = wait_until(lambda: len(_containers(name)) == 1 and _containers(name), timeout=120)
    wait_until(lambda: set(_claims(data)) == {f"cpu-{survivor}"}, timeout=120)
    assert _claims(data)[f"cpu-{survivor}"]["token"]  # the survivor still holds its claim
