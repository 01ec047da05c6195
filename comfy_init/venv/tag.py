"""The two small files that decide, on every start, whether an instance environment fits: the
image's build file (beside the base interpreter) and the environment's tag (inside it, a copy of
the build it was made for). Comparing them is two reads; no pip, no walk.
"""

import json
import os

from comfy_init.layout import VENV_CONSTRAINTS_NAME, VENV_TAG_NAME
from comfy_init.venv.buildinfo import IDENTITY

# In the base interpreter's prefix (/opt/venv in the images), written at image build.
BUILD_FILE = "comfy-init-build.json"
# In each instance environment: the build it was made for, written last when it is complete.
TAG_FILE = VENV_TAG_NAME
CONSTRAINTS_FILE = VENV_CONSTRAINTS_NAME
PTH_FILE = "_comfy_init_image.pth"


def prefix_of(python):
    """The prefix of a venv's interpreter (<prefix>/bin/python), without resolving its link: a
    venv's python is a link to the system one, and the venv is what counts."""
    return os.path.dirname(os.path.dirname(os.path.abspath(python)))


def build_file_for(python):
    return os.path.join(prefix_of(python), BUILD_FILE)


def constraint_reference(path):
    """How pip.conf and PIP_CONSTRAINT name the constraints file: pip splits both on whitespace, so
    a path with a space (a data root such as "/srv/My Data") is given as a file: URL, which pip
    reads as well."""
    if not any(character.isspace() for character in path):
        return path
    from urllib.parse import quote

    return "file://" + quote(os.path.abspath(path))


def read_json(path):
    """The JSON object in `path`, None when the file is missing or not a JSON object."""
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def probe_build(python, comfyui_dir):
    """The build of an interpreter without a build file (a host): buildinfo run as a script by
    that interpreter, one process start. None when it cannot run."""
    import subprocess

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "buildinfo.py")
    try:
        done = subprocess.run([python, "-I", script, "--comfyui-dir", comfyui_dir], capture_output=True,
                              text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    try:
        value = json.loads(done.stdout)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def image_build(python, comfyui_dir):
    """(build dict, where it came from): the image's build file, else a probe of `python`."""
    path = build_file_for(python)
    found = read_json(path)
    if found is not None:
        return found, path
    return probe_build(python, comfyui_dir), "probed " + python


def differences(made_for, build):
    """What differs between the build an environment was made for and this one, as
    'torch 2.8.0 -> 2.9.0' strings; [] when it fits."""
    if made_for is None:
        return ["no tag"]
    return [f"{field} {made_for.get(field)} -> {build.get(field)}" for field in IDENTITY
            if made_for.get(field) != build.get(field)]


def summary(build):
    """One line naming a build: 'ComfyUI 0.3.64, torch 2.8.0+cu128 (CUDA 12.8), cpython-311-...'."""
    if not build:
        return "unknown build"
    torch = f"torch {build.get('torch')}" + (f" (CUDA {build['cuda']})" if build.get("cuda") else "")
    return f"ComfyUI {build.get('comfyui')}, {torch if build.get('torch') else 'no torch'}, {build.get('python_abi')}"
