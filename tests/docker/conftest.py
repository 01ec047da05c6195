"""Fixtures of the image and compose tests (all marked `docker`).

- `test_images`: the three images, built from the shipped Dockerfiles with the offline test build
  arguments (docker/build-test-images.sh; the debootstrap base image is built first if missing).
- pytest-docker drives compose/docker-compose.yml with docker-compose 1.29 (Compose v1): profile
  multi-cpu, images and data directory chosen through the variables the compose file reads.
- `multi_cpu`: that project once up and healthy; `running` makes sure both instances run again
  before a test (tests stop and kill them) and checks their logs after it.
- `containers`: `docker run` containers, removed after the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pytest_docker.plugin import DockerComposeExecutor, get_docker_services  # noqa: E402

from tests.docker.helpers import (  # noqa: E402
    BUILD_TEST_BASE,
    BUILD_TEST_IMAGES,
    COMPOSE_FILE,
    VARIANTS,
    Container,
    Containers,
    answers,
    compose_container,
    compose_variables,
    image_tag,
    make_data_dir,
    require_free_ports,
    wait_until,
)

MULTI_CPU_PORTS = {"cpu-1": 8191, "cpu-2": 8192}
# Runs its own multi-cpu project on the same host ports: it goes before the session's `multi_cpu`
# project, which holds them until the session ends.
RUNS_FIRST = Path(__file__).with_name("test_comfy_stack.py")


def pytest_collection_modifyitems(session, config, items):
    first = [item for item in items if Path(str(item.fspath)) == RUNS_FIRST]
    if not first:
        return
    rest = [item for item in items if Path(str(item.fspath)) != RUNS_FIRST]
    docker_dir = RUNS_FIRST.parent
    at = next((i for i, item in enumerate(rest) if docker_dir in Path(str(item.fspath)).parents), len(rest))
    items[:] = rest[:at] + first + rest[at:]


def _run_script(script: Path, timeout: float, env: dict | None = None) -> None:
    result = subprocess.run([str(script)], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    sys.stderr.write(result.stdout)  # progress lines (build times, sizes); shown with -s or on failure
    if result.returncode != 0:
        pytest.fail(f"{script.relative_to(ROOT)} exited {result.returncode}:\n{result.stdout}{result.stderr}",
                    pytrace=False)


@pytest.fixture(scope="session")
def docker_engine():
    """A reachable Docker engine and docker-compose, or a failure that says what to do."""
    missing = [tool for tool in ("docker", "docker-compose") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: .ci/run installs docker.io and docker-compose; "
                    "or deselect these tests with -m 'not docker'", pytrace=False)
    result = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        pytest.fail("no Docker engine answers `docker info` (start dockerd, as .ci/run does, or deselect "
                    f"these tests with -m 'not docker'):\n{result.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def test_images(docker_engine) -> dict[str, str]:
    """variant -> tag of the images built offline from docker/Dockerfile.<variant>."""
    _run_script(BUILD_TEST_BASE, timeout=1200)  # reuses the image when it exists
    _run_script(BUILD_TEST_IMAGES, timeout=1200, env={"PYTHON": sys.executable})
    return {variant: image_tag(variant) for variant in VARIANTS}


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory) -> Path:
    """The data directory of the multi-cpu project, shared by its instances and by `docker run` ones."""
    return make_data_dir(tmp_path_factory.mktemp("shared-data"))


@pytest.fixture(scope="session")
def compose_env(test_images, shared_data):
    with pytest.MonkeyPatch.context() as mp:
        values = compose_variables(test_images, shared_data)
        for key, value in values.items():
            mp.setenv(key, value)
        yield values


# --- pytest-docker -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    return "docker-compose"  # Compose v1 (Debian's docker-compose 1.29): no `docker compose` plugin here


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(COMPOSE_FILE)


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"comfyinit{os.getpid()}"


@pytest.fixture(scope="session")
def docker_setup(compose_env):
    # The images are built by `test_images`; `up --wait` is Compose v2 only, so `multi_cpu` waits.
    require_free_ports(*MULTI_CPU_PORTS.values())
    return ["--profile multi-cpu up -d --no-build"]


@pytest.fixture(scope="session")
def docker_cleanup():
    return ["--profile multi-cpu down -v --remove-orphans"]


@pytest.fixture(scope="session")
def docker_services(docker_compose_command, docker_compose_file, docker_compose_project_name,
                    docker_setup, docker_cleanup):
    """pytest-docker's fixture, plus a clean-up when `up` itself fails (it only cleans after a yield)."""
    try:
        context = get_docker_services(docker_compose_command, docker_compose_file,
                                      docker_compose_project_name, docker_setup, docker_cleanup)
        services = context.__enter__()
    except Exception:
        executor = DockerComposeExecutor(docker_compose_command, docker_compose_file,
                                         docker_compose_project_name)
        for command in docker_cleanup:
            executor.execute(command, success_codes=range(256))
        raise
    try:
        yield services
    finally:
        context.__exit__(None, None, None)


# --- the multi-cpu project -----------------------------------------------------------------------


@dataclass
class Project:
    name: str
    data: Path
    ports: dict[str, int]
    containers: dict[str, Container] = field(default_factory=dict)

    def container(self, service: str) -> Container:
        return self.containers[service]


@pytest.fixture(scope="session")
def multi_cpu(docker_services, docker_compose_project_name, shared_data) -> Project:
    project = Project(docker_compose_project_name, shared_data, dict(MULTI_CPU_PORTS))
    for service in project.ports:
        project.containers[service] = compose_container(project.name, service)
    for container in project.containers.values():
        container.wait_healthy(timeout=90)
    return project


@pytest.fixture
def running(multi_cpu) -> Project:
    """multi_cpu with both instances running and answering; their logs checked after the test."""
    for container in multi_cpu.containers.values():
        if not container.running():
            container.start()
    for service, port in multi_cpu.ports.items():
        wait_until(lambda port=port: answers(port), 60, message=f"{service} answers")
    yield multi_cpu
    for container in multi_cpu.containers.values():
        container.assert_clean_logs()


@pytest.fixture
def containers(request):
    name = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40]
    factory = Containers(prefix=f"comfyinit{os.getpid()}-{name}")
    yield factory
    factory.remove_all()
