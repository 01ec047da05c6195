"""Docker helpers for the image and compose tests: the docker CLI, containers, HTTP, waiting.

Modelled on jupyter/docker-stacks' tests: a container object that knows its logs and fails on ERROR
or Traceback lines, and `wait_until` instead of sleeps. Everything goes through the `docker` and
`docker-compose` command lines (the engine here is Debian's docker.io, Compose is v1).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
BUILD_TEST_BASE = ROOT / "docker" / "build-test-base.sh"
BUILD_TEST_IMAGES = ROOT / "docker" / "build-test-images.sh"

TEST_BASE_IMAGE = os.environ.get("TEST_BASE_IMAGE", "comfy-init-test-base:bookworm")
TEST_IMAGE_REPOSITORY = os.environ.get("TEST_IMAGE_REPOSITORY", "comfy-init-test")
TEST_IMAGE_TAG = os.environ.get("TEST_IMAGE_TAG", "ci")
VARIANTS = ("cpu", "core", "complete")

EX_TEMPFAIL = 75
# Log lines that fail a test unless it expects them (docker-stacks fails on ERROR/WARNING; comfy-init
# logs expected takeovers and retries as WARNING, so only errors and tracebacks count here).
BAD_LOG_LINE = re.compile(r"Traceback \(most recent call last\)|^\s*(ERROR|CRITICAL)\b|\bERROR:")

T = TypeVar("T")


def image_tag(variant: str) -> str:
    return f"{TEST_IMAGE_REPOSITORY}/{variant}:{TEST_IMAGE_TAG}"


class DockerError(RuntimeError):
    pass


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run `docker ARGS`; raise DockerError with its output when it fails and `check` is set."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise DockerError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def compose(project: str, *args: str, profiles: Iterable[str] = (), env: dict | None = None,
            timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    """Run docker-compose (v1) on compose/docker-compose.yml as project `project`."""
    command = ["docker-compose", "-f", str(COMPOSE_FILE), "-p", project]
    for profile in profiles:
        command += ["--profile", profile]
    result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise DockerError(f"{' '.join(command + list(args))} exited {result.returncode}:\n"
                          f"{result.stdout}{result.stderr}")
    return result


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.2,
               message: str | None = None) -> T:
    """Call `predicate` until it returns something truthy and return that; exceptions mean "not yet"."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except Exception as e:  # noqa: BLE001 - not ready yet, in any of its shapes
            last_error = e
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            detail = f"; last error: {last_error!r}" if last_error is not None else ""
            raise TimeoutError(f"{what}: not true within {timeout:g} s{detail}")
        time.sleep(interval)


def http_json(port: int, path: str, method: str = "GET", timeout: float = 3.0) -> Any:
    """GET (or POST with an empty body) http://127.0.0.1:PORT/PATH and decode the JSON answer."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def answers(port: int) -> bool:
    """True when ComfyUI on PORT answers /system_stats (what `comfy-init health` asks)."""
    try:
        http_json(port, "/system_stats", timeout=1.0)
        return True
    except (OSError, urllib.error.URLError, ValueError):
        return False


def port_in_use(port: int) -> bool:
    """True when something (another test run, the benchmark, a real ComfyUI) holds host port PORT."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def require_free_ports(*ports: int) -> None:
    """Fail at once, and say why, instead of letting Docker fail to publish a port half-way."""
    import pytest

    busy = [port for port in ports if port_in_use(port)]
    if busy:
        pytest.fail(f"host port(s) {busy} already in use (another test run or bench/compose_up.py? "
                    f"`docker ps` shows who): the compose services publish fixed ports", pytrace=False)


def bad_log_lines(logs: str, allow: Iterable[str] = ()) -> list[str]:
    allowed = [re.compile(a) for a in allow]
    return [line for line in logs.splitlines()
            if BAD_LOG_LINE.search(line) and not any(a.search(line) for a in allowed)]


class Container:
    """One container, by id: state, logs, exec, and the lifecycle commands the tests use."""

    def __init__(self, container_id: str, label: str | None = None):
        self.id = container_id
        self.label = label or container_id[:12]

    def __repr__(self) -> str:
        return f"Container({self.label})"

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def inspect(self, template: str) -> str:
        return docker("inspect", "-f", template, self.id).stdout.strip()

    def state(self) -> dict:
        return json.loads(self.inspect("{{json .State}}"))

    def health(self) -> str | None:
        health = self.state().get("Health")
        return health["Status"] if health else None

    def running(self) -> bool:
        return bool(self.state().get("Running"))

    def exit_code(self) -> int:
        return int(self.state()["ExitCode"])

    def logs(self) -> str:
        result = docker("logs", self.id, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str, user: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        options = ["--user", user] if user else []
        return docker("exec", *options, self.id, *command, check=check)

    def start(self) -> None:
        docker("start", self.id)

    def stop(self, timeout: float | None = None) -> float:
        """`docker stop`; returns the seconds it took (Docker waits at most the stop grace)."""
        options = ["-t", str(int(timeout))] if timeout is not None else []
        started = time.monotonic()
        docker("stop", *options, self.id, timeout=120)
        return time.monotonic() - started

    def kill(self, signal: str = "KILL") -> None:
        docker("kill", "-s", signal, self.id)

    def wait_exit(self, timeout: float = 60) -> int:
        wait_until(lambda: not self.running(), timeout, message=f"{self.label} exits")
        return self.exit_code()

    def wait_healthy(self, timeout: float = 60) -> None:
        def healthy():
            state = self.state()
            if not state.get("Running"):
                raise DockerError(f"{self.label} is not running (exit code {state.get('ExitCode')}):\n"
                                  + self.logs()[-3000:])
            return (state.get("Health") or {}).get("Status") == "healthy"
        wait_until(healthy, timeout, interval=0.5, message=f"{self.label} becomes healthy")

    def assert_clean_logs(self, allow: Iterable[str] = ()) -> None:
        logs = self.logs()
        bad = bad_log_lines(logs, allow)
        assert not bad, f"{self.label} logged errors:\n" + "\n".join(bad) + "\n--- full log ---\n" + logs

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.id, check=False)


class Containers:
    """Starts containers with `docker run` and removes them all at the end (a fixture's factory)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.started: list[Container] = []

    def run(self, image: str, *, name: str, env: dict | None = None, ports: Iterable[int] = (),
            data: Path | None = None, detach: bool = True, args: Iterable[str] = ()) -> Container:
        options = ["--name", f"{self.prefix}-{name}"]
        for key, value in (env or {}).items():
            options += ["-e", f"{key}={value}"]
        for port in ports:
            options += ["-p", f"{port}:{port}"]
        if data is not None:
            options += ["-v", f"{data}:/data"]
        # Always detached: a foreground `docker run` would tie the test to the container's streams.
        result = docker("run", "-d", *options, image, *args)
        container = Container(result.stdout.strip(), label=name)
        self.started.append(container)
        return container

    def remove_all(self) -> None:
        for container in self.started:
            container.remove()
        self.started.clear()


def compose_container(project: str, service: str) -> Container:
    """The container of `service` in compose project `project` (found by Compose's labels)."""
    result = docker("ps", "-a", "-q", "--no-trunc",
                    "--filter", f"label=com.docker.compose.project={project}",
                    "--filter", f"label=com.docker.compose.service={service}")
    ids = result.stdout.split()
    assert len(ids) == 1, f"expected one container for {project}/{service}, found {ids}"
    return Container(ids[0], label=service)


def host_path(data_dir: Path, container_path: str) -> Path:
    """Where a path under the container's /data lies on the host."""
    assert container_path == "/data" or container_path.startswith("/data/"), container_path
    return data_dir / container_path[len("/data/"):] if container_path != "/data" else data_dir


def tree_owners(root: Path) -> dict[str, tuple[int, int]]:
    """(uid, gid) of every path under `root`, links not followed."""
    owners = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            owners[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_uid, st.st_gid)
    return owners


def tree_contents(root: Path, skip: Callable[[str], bool] = lambda rel: False) -> dict[str, bytes]:
    """Relative path -> bytes of every regular file under `root` (what "unchanged" compares)."""
    contents = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if not skip(rel) and os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    contents[rel] = f.read()
    return contents


def read_registry(data_dir: Path) -> dict:
    with open(data_dir / "meta" / "instance-registry.json", encoding="utf-8") as f:
        return json.load(f)


def make_data_dir(path: Path) -> Path:
    # pytest makes its temporary directories 0700; a real data directory lets an unprivileged
    # ComfyUI (PUID) traverse /data.
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def compose_variables(images: dict[str, str], data: Path) -> dict[str, str]:
    """What the compose file reads, set explicitly so that a developer's compose/.env cannot leak in."""
    return {
        "COMFY_DATA_PATH": str(data),
        "COMFY_CORE_IMAGE": images["core"],
        "COMFY_COMPLETE_IMAGE": images["complete"],
        "COMFY_CPU_IMAGE": images["cpu"],
        "PUID": "",
        "PGID": "",
        "CLI_ARGS": "",
    }


def compose_files(project: str, files: Iterable[Path], *args: str, profiles: Iterable[str] = (),
                  env: dict | None = None, timeout: float = 300,
                  check: bool = True) -> subprocess.CompletedProcess:
    """Run docker-compose (v1) on several compose files (`-f` each, in order) as project `project`:
    the shipped file and the one `comfy-init compose` writes beside it."""
    command = ["docker-compose"]
    for path in files:
        command += ["-f", str(path)]
    command += ["-p", project]
    for profile in profiles:
        command += ["--profile", profile]
    result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise DockerError(f"{' '.join(command + list(args))} exited {result.returncode}:\n"
                          f"{result.stdout}{result.stderr}")
    return result


def project_containers(project: str) -> list[str]:
    """Ids of every container (running or not) of compose project `project`."""
    return docker("ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={project}").stdout.split()


def free_host_port(start: int = 20000, stop: int = 30000, tries: int = 200) -> int:
    """A host port in [start, stop) that nothing holds on any address (Docker publishes on
    0.0.0.0), picked at random so that parallel runs rarely collide."""
    import random

    for _ in range(tries):
        port = random.randrange(start, stop)
        if not port_in_use(port):
            return port
    raise RuntimeError(f"no free port in {start}-{stop} after {tries} tries")
