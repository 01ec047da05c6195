"""Under PUID, the instance environment is made by ComfyUI's user, so ComfyUI (as that user) can
install into it later; root makes it, the user owns it."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.support.ports import free_port
from tests.support.processes import instance_env
from tests.support.wheels import write_wheel
from tests.venv.conftest import BUILDINFO, STANDIN
from tests.venv.test_run_venv import FAKE_MAIN

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="privilege changes need root")
UID = GID = 4243
SYSTEM_PYTHON = "/usr/bin/python3"  # the test interpreter may live under /root, out of the user's reach


@pytest.fixture
def tree():
    root = tempfile.mkdtemp(prefix="comfy-init-venv-puid-")
    os.chmod(root, 0o777)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(subprocess.run([SYSTEM_PYTHON, "-c", "import ensurepip, venv"], capture_output=True).returncode,
                    reason=f"{SYSTEM_PYTHON} with venv and ensurepip is needed")
def test_the_environment_belongs_to_puid_and_comfyui_installs_into_it(tree):
    wheels = os.path.join(tree, "wheels")
    write_wheel(wheels, "foo", "1.0")
    write_wheel(wheels, "foo", "2.0")
    write_wheel(wheels, "bar", "1.0")
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": wheels, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    base = os.path.join(tree, "base")
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", base], check=True, capture_output=True)
    python = os.path.join(base, "bin", "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "foo==1.0"], check=True, capture_output=True,
                   env=dict(os.environ, **offline))
    subprocess.run([python, "-I", str(BUILDINFO), "--comfyui-dir", str(STANDIN), "--write",
                    os.path.join(base, "comfy-init-build.json")], check=True)
    app = os.path.join(tree, "comfyui")
    shutil.copytree(STANDIN, app)
    with open(os.path.join(app, "main.py"), "w") as file:
        file.write(FAKE_MAIN)
    node = os.path.join(tree, "data", "instances", "u", "custom_nodes", "node-1")
    os.makedirs(node)
    with open(os.path.join(node, "requirements.txt"), "w") as file:
        file.write("bar==1.0\n")
    report = os.path.join(tree, "report.json")
    env = {k: v for k, v in instance_env(instance_id="u", data=os.path.join(tree, "data"), app=app, port=free_port(),
                                         COMFY_PYTHON=python, FAKE_REPORT=report, FAKE_INSTALL="foo==2.0",
                                         PUID=UID, PGID=GID).items() if not k.startswith("PIP_")}
    done = subprocess.run([sys.executable, "-m", "comfy_init", "run"], env=dict(env, **offline), capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    with open(report) as file:
        found = json.load(file)
    venv = os.path.join(tree, "data", "instances", "u", "venv")
    assert found["executable"] == os.path.join(venv, "bin", "python")
    assert found["install"]["returncode"] == 0, found["install"]["output"]
    assert found["foo"] == "2.0"
    site = subprocess.run([os.path.join(venv, "bin", "python"), "-c", "import bar, foo; print(bar.__file__, foo.__file__)"],
                          capture_output=True, text=True, check=True).stdout.split()
    for path in site + [venv, os.path.join(venv, "comfy-init-venv.json"), os.path.join(venv, "pip.conf")]:
        assert path.startswith(venv) and (os.lstat(path).st_uid, os.lstat(path).st_gid) == (UID, GID), path
