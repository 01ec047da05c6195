"""Instance environments in the cpu image: two instances with conflicting versions of one package
(wheels built here, installed offline from a mounted folder) each keep their own across `docker rm`
and a new container; a container of an image with another build tag moves the environment aside and
rebuilds it from its recorded packages before ComfyUI starts."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.docker.helpers import docker, make_data_dir, wait_until
from tests.support.wheels import write_wheel

pytestmark = pytest.mark.docker

OTHER_BUILD = """FROM {image}
RUN python -c "import json; p = '/opt/venv/comfy-init-build.json'; d = json.load(open(p)); \\
d['comfyui'] = '0.0.0-other'; json.dump(d, open(p, 'w'))"
"""


@pytest.fixture(scope="module")
def images(test_images):
    """The cpu test image, and one built FROM it whose build file names another ComfyUI release."""
    image = test_images["cpu"]
    other = image + "-other-build"
    subprocess.run(["docker", "build", "-q", "-t", other, "-"], input=OTHER_BUILD.format(image=image), text=True,
                   check=True, capture_output=True, timeout=300)
    yield image, other
    docker("rmi", "-f", other, check=False)


@pytest.fixture
def setup(tmp_path):
    data = make_data_dir(tmp_path / "data")
    wheels = tmp_path / "wheels"
    for version in ("2.0", "3.0"):
        write_wheel(wheels, "foo", version)
    wheels.chmod(0o755)
    names = []

    def run(image, instance_id, port):
        name = f"venv-{os.getpid()}-{instance_id}-{len(names)}"
        docker("run", "-d", "--name", name, "-v", f"{data}:/data", "-v", f"{wheels}:/wheels:ro",
               "-e", "COMFY_MULTI_INSTANCE=true", "-e", f"COMFY_INSTANCE_ID={instance_id}",
               "-e", f"COMFY_PORT={port}", "-e", "PIP_NO_INDEX=1", "-e", "PIP_FIND_LINKS=/wheels", image)
        names.append(name)
        wait_until(lambda: "started ComfyUI" in logs(name) or exited(name), timeout=120)
        assert "started ComfyUI" in logs(name), logs(name)
        return name

    yield data, run
    for name in names:
        docker("rm", "-f", name, check=False)


def logs(name):
    done = docker("logs", name, check=False)
    return done.stdout + done.stderr


def exited(name):
    return docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "false"


def foo_in(name, instance_id):
    done = docker("exec", name, f"/data/instances/{instance_id}/venv/bin/python", "-c",
                  "import foo; print(foo.VERSION, foo.__file__)")
    return done.stdout.split()


def test_conflicting_versions_survive_docker_rm_and_another_build_rebuilds(images, setup):
    image, other = images
    data, run = setup
    first = {"venv-a": run(image, "venv-a", 8301), "venv-b": run(image, "venv-b", 8302)}
    for (instance_id, name), version in zip(first.items(), ("2.0", "3.0")):
        assert f"command: /data/instances/{instance_id}/venv/bin/python" in logs(name)
        docker("exec", name, f"/data/instances/{instance_id}/venv/bin/python", "-m", "pip", "install", f"foo=={version}")
        assert foo_in(name, instance_id) == [version, f"/data/instances/{instance_id}/venv/lib/python3.11/site-packages/foo/__init__.py"]
    assert docker("exec", first["venv-a"], "python", "-c", "import foo", check=False).returncode != 0  # not the image's
    for name in first.values():
        docker("rm", "-f", name)
    again = {"venv-a": run(image, "venv-a", 8301), "venv-b": run(image, "venv-b", 8302)}
    for (instance_id, name), version in zip(again.items(), ("2.0", "3.0")):
        assert "creating the environment" not in logs(name) and "rebuilding" not in logs(name)
        assert foo_in(name, instance_id)[0] == version
        docker("rm", "-f", name)
    rebuilt = run(other, "venv-a", 8301)
    text = logs(rebuilt)
    assert re.search(r"rebuilding the environment \(made for another image: comfyui \S+ -> 0\.0\.0-other", text), text
    assert text.index("environment ready") < text.index("started ComfyUI")
    assert foo_in(rebuilt, "venv-a")[0] == "2.0"
    moved = sorted((data / "instances" / "venv-a").glob("venv.moved-*"))
    assert len(moved) == 1 and (moved[0] / "lib" / "python3.11" / "site-packages" / "foo" / "__init__.py").exists()
