"""Benchmark the multi-cpu compose project on the offline test images.

    python bench/compose_up.py [--runs 5]

Builds the test images (docker/build-test-images.sh; the base image first if missing), then, RUNS
times on a fresh data directory: `docker-compose --profile multi-cpu up -d`, the time until both
instances answer /system_stats and until Docker reports both healthy, then `docker stop` of cpu-1
(the time until it has exited), then `down`. Prints key=value lines: medians, and the image sizes.

Docker's first health check runs one interval (10 s) after the start, so `healthy` is bounded below
by it; `ready` is when ComfyUI (the stand-in) first answered.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.docker.helpers import (  # noqa: E402
    BUILD_TEST_BASE,
    BUILD_TEST_IMAGES,
    VARIANTS,
    answers,
    compose,
    compose_container,
    compose_variables,
    docker,
    image_tag,
    make_data_dir,
    port_in_use,
    wait_until,
)

PORTS = {"cpu-1": 8191, "cpu-2": 8192}


def build_images() -> dict[str, str]:
    for script, env in ((BUILD_TEST_BASE, {}), (BUILD_TEST_IMAGES, {"PYTHON": sys.executable})):
        subprocess.run([str(script)], check=True, env={**os.environ, **env},
                       stdout=sys.stderr, stderr=sys.stderr)
    return {variant: image_tag(variant) for variant in VARIANTS}


def one_run(images: dict[str, str], project: str) -> dict[str, float]:
    data = make_data_dir(Path(tempfile.mkdtemp(prefix="comfy-init-bench-")))
    env = compose_variables(images, data)
    try:
        started = time.monotonic()
        compose(project, "up", "-d", "--no-build", profiles=["multi-cpu"], env=env)
        containers = {service: compose_container(project, service) for service in PORTS}
        ready = {}
        pending = set(PORTS)
        deadline = started + 120
        while pending and time.monotonic() < deadline:
            for service in sorted(pending):
                if answers(PORTS[service]):
                    ready[service] = time.monotonic() - started
                    pending.discard(service)
            time.sleep(0.05)
        if pending:
            raise TimeoutError(f"{sorted(pending)} did not answer within 120 s")
        for container in containers.values():
            wait_until(lambda c=container: c.health() == "healthy", 120, interval=0.1,
                       message=f"{container.label} healthy")
        healthy = time.monotonic() - started
        stop = containers["cpu-1"].stop()
        code = containers["cpu-1"].exit_code()
        if code != 0:
            raise RuntimeError(f"cpu-1 exited {code} after docker stop")
        return {"ready": max(ready.values()), "healthy": healthy, "stop": stop}
    finally:
        compose(project, "down", "-v", "--remove-orphans", profiles=["multi-cpu"], env=env, check=False)
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    busy = [port for port in PORTS.values() if port_in_use(port)]
    if busy:
        print(f"host port(s) {busy} in use (a test run?): the multi-cpu services publish them", file=sys.stderr)
        return 1
    images = build_images()
    project = f"comfyinitbench{os.getpid()}"
    results = [one_run(images, project) for _ in range(args.runs)]

    for key, label in (("ready", "compose_up_to_both_ready_s"),
                       ("healthy", "compose_up_to_both_healthy_s"),
                       ("stop", "docker_stop_to_exit_s")):
        values = [r[key] for r in results]
        print(f"{label}_median={statistics.median(values):.2f}")
        print(f"{label}_all={','.join(f'{v:.2f}' for v in values)}")
    print(f"runs={args.runs}")
    for variant, image in images.items():
        size = docker("image", "inspect", "-f", "{{.Size}}", image).stdout.strip()
        print(f"image_size_bytes_{variant}={size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
