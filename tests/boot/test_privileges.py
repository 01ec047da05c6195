"""PUID/PGID: ComfyUI runs as that user, owns what it writes, and nothing is chowned recursively."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from tests.support.http import get_json
from tests.support.ports import free_port
from tests.support.standin import STANDIN_DIR
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="privilege changes need root")

UID = GID = 4242  # no passwd entry: HOME must still be writable
SYSTEM_PYTHON = "/usr/bin/python3"  # the test interpreter may live under /root, out of uid 4242's reach


@pytest.fixture
def world_readable_tree():
    # pytest's tmp_path is private to root; ComfyUI's user must be able to reach the data root.
    root = tempfile.mkdtemp(prefix="comfy-init-privileges-")
    os.chmod(root, 0o755)
    checkout = os.path.join(root, "comfyui")
    shutil.copytree(STANDIN_DIR, checkout, ignore=shutil.ignore_patterns("__pycache__"))
    yield root, checkout
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason=f"{SYSTEM_PYTHON} is needed")
def test_comfyui_runs_as_puid_and_owns_its_output(world_readable_tree):
    root, checkout = world_readable_tree
    data = os.path.join(root, "data")
    models = os.path.join(data, "shared", "models", "checkpoints")
    os.makedirs(models)
    with open(os.path.join(models, "root-owned.safetensors"), "wb") as file:
        file.write(b"w")
    report = os.path.join(root, "child-identity.txt")
    wrapper = os.path.join(root, "python-wrapper.sh")
    with open(wrapper, "w") as file:
        file.write(f'#!/bin/sh\n{{ id -u; id -g; echo "$HOME"; touch "$HOME/probe" && echo home-writable; }} > {report}\n'
                   f'exec {SYSTEM_PYTHON} "$@"\n')
    os.chmod(wrapper, 0o755)
    os.chmod(root, 0o777)  # let the wrapper write its report
    port = free_port()
    env = {"PATH": os.environ["PATH"], "COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "user-1",
           "COMFY_DATA_DIRECTORY": data, "COMFY_APP_DIRECTORY": checkout, "COMFY_DEVICE": "cpu",
           "COMFY_PORT": str(port), "COMFY_LISTEN": "127.0.0.1", "COMFY_PYTHON": wrapper,
           "PUID": str(UID), "PGID": str(GID)}
    process = subprocess.Popen([sys.executable, "-m", "comfy_init", "run"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        stats = wait_until(lambda: get_json(f"http://127.0.0.1:{port}/system_stats"), timeout=20)
        assert (stats["system"]["uid"], stats["system"]["gid"]) == (UID, GID)
        written = get_json_post(f"http://127.0.0.1:{port}/standin/output?name=owned")["path"]
        info = os.stat(written)
        assert (info.st_uid, info.st_gid) == (UID, GID)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output
    with open(report) as file:
        uid, gid, home, writable = file.read().split()
    assert (int(uid), int(gid), writable) == (UID, GID, "home-writable")
    instance = os.path.join(data, "instances", "user-1")
    for path in [instance] + [os.path.join(instance, name) for name in ("custom_nodes", "user", "output")]:
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (UID, GID), path
    # Never chowned: the shared models, and anything below the top level.
    for path in (models, os.path.join(models, "root-owned.safetensors"), os.path.join(data, "shared", "models")):
        assert os.stat(path).st_uid == 0, path


def get_json_post(url):
    import json
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5) as response:
        return json.loads(response.read())


def test_non_root_changes_nothing():
    # Everything is imported before dropping to nobody: the interpreter may live under /root.
    code = ("import os, pwd; from comfy_init.boot.config import load_config; from comfy_init.boot import privileges; "
            "c = load_config({'COMFY_DATA_DIRECTORY': '/nonexistent', 'PUID': '4242'}); "
            "os.setuid(65534); print(privileges.prepare(c, []))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))},
                            cwd="/")
    assert result.stdout.strip() == "None"
    assert "PUID=4242 is ignored" in result.stderr


def test_unmapped_puid_in_a_user_namespace_is_one_clear_line_with_77(tmp_path):
    probe = subprocess.run(["unshare", "-U", "-r", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot create a user namespace here")
    env = {"PATH": os.environ["PATH"], "COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "userns-1",
           "COMFY_DATA_DIRECTORY": str(tmp_path / "data"), "COMFY_APP_DIRECTORY": str(STANDIN_DIR),
           "COMFY_DEVICE": "cpu", "COMFY_PORT": str(free_port()), "PUID": "1000",
           "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    # In a user namespace that maps only root, uid 1000 does not exist: lchown fails with EINVAL.
    result = subprocess.run(["unshare", "-U", "-r", sys.executable, "-m", "comfy_init", "run"], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 77, result.stderr
    assert "not mapped in this user namespace" in result.stderr
    assert "Traceback" not in result.stderr
