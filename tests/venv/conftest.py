"""A real "image" for instance environments: a base venv (with its own pip, as /opt/venv has) holding a
fake torch 1.0 and foo 1.0 built here as wheels, and its build file written by buildinfo run with
that interpreter. Installs are offline: PIP_NO_INDEX and a local wheelhouse."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.wheels import write_wheel

BUILDINFO = Path(__file__).resolve().parents[2] / "comfy_init" / "venv" / "buildinfo.py"
STANDIN = Path(__file__).resolve().parents[1] / "standin_comfyui"


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory):
    directory = tmp_path_factory.mktemp("wheelhouse")
    for version in ("1.0", "2.0", "3.0"):
        write_wheel(directory, "foo", version)
    write_wheel(directory, "torch", "1.0")
    write_wheel(directory, "torch", "9.0")
    write_wheel(directory, "bar", "1.0")
    write_wheel(directory, "needs-new-torch", "1.0", requires=["torch>=2"])
    return directory


def offline(wheelhouse):
    """The pip variables of an offline install from the wheelhouse (and none of the shell's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
    return dict(env, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse), PIP_DISABLE_PIP_VERSION_CHECK="1")


@pytest.fixture(scope="session")
def base(tmp_path_factory, wheelhouse):
    """The image's interpreter: <base>/bin/python, with torch 1.0 and foo 1.0, and its build file."""
    root = tmp_path_factory.mktemp("image") / "base"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True)
    python = root / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==1.0", "foo==1.0"], check=True,
                   env=offline(wheelhouse), capture_output=True)
    write_build_file(python)
    return python


def write_build_file(python, **changes):
    """(Re)write the build file beside `python`, as the image build does; `changes` alter fields."""
    build_file = Path(python).parents[1] / "comfy-init-build.json"
    subprocess.run([str(python), "-I", str(BUILDINFO), "--comfyui-dir", str(STANDIN), "--write", str(build_file)],
                   check=True, capture_output=True)
    if changes:
        build = json.loads(build_file.read_text())
        build.update(changes)
        build_file.write_text(json.dumps(build))
    return build_file


@pytest.fixture
def image(base):
    """The base interpreter; its build file is put back as built after the test (a test may pretend
    to be another image by changing it)."""
    build_file = Path(base).parents[1] / "comfy-init-build.json"
    saved = build_file.read_bytes()
    yield base
    build_file.write_bytes(saved)


def imported(python, module, env=None):
    """What `python -c 'import module'` finds: (VERSION, file)."""
    done = subprocess.run([str(python), "-c", f"import {module}, json; print(json.dumps([{module}.VERSION, "
                           f"{module}.__file__]))"], capture_output=True, text=True, env=env, check=True)
    return tuple(json.loads(done.stdout))
