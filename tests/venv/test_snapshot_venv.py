"""Snapshots record the instance environment's own packages; a restore hands them to the next
environment made, which reinstalls them (the environment itself is never archived)."""

import json
import subprocess
import sys

from tests.support.cli import envelope
from tests.support.ports import free_port
from tests.support.processes import instance_env
from tests.venv.conftest import STANDIN, imported, offline


def start(tmp_path, image, wheelhouse):
    env = dict(offline(wheelhouse), **{k: v for k, v in instance_env(
        instance_id="a", data=tmp_path / "data", app=STANDIN, port=free_port(), COMFY_PYTHON=image,
        STANDIN_EXIT_CODE="0").items() if not k.startswith("PIP_")})
    return subprocess.run([sys.executable, "-m", "comfy_init", "run"], env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_restore_rebuilds_the_environment_from_the_snapshot_freeze(tmp_path, image, wheelhouse):
    data = tmp_path / "data"
    assert envelope(data, "instance", "create", "a")["exit_code"] == 0
    assert start(tmp_path, image, wheelhouse).returncode == 0
    venv = data / "instances" / "a" / "venv"
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "foo==3.0"], env=offline(wheelhouse),
                   check=True, capture_output=True)
    created = envelope(data, "snapshot", "create", "a")
    assert created["exit_code"] == 0, created
    manifest = envelope(data, "snapshot", "show", created["data"]["name"])["data"]["manifest"]
    assert manifest["venv"]["freeze"] == ["foo==3.0"] and manifest["venv"]["build"]["torch"] == "1.0"
    assert not any(entry["path"].startswith("venv") for entry in manifest["entries"])  # not archived
    restored = envelope(data, "snapshot", "restore", created["data"]["name"], "--yes")
    assert restored["exit_code"] == 0, restored
    assert not venv.exists()
    recorded = data / "instances" / "a" / "venv-requirements.restored.txt"
    assert recorded.read_text() == "foo==3.0\n"
    done = start(tmp_path, image, wheelhouse)
    assert done.returncode == 0, done.stderr
    assert "creating the environment" in done.stderr and "1 recorded package(s)" in done.stderr
    version, where = imported(venv / "bin" / "python", "foo")
    assert version == "3.0" and where.startswith(str(venv))
    assert not recorded.exists() and (venv / recorded.name).read_text() == "foo==3.0\n"
    assert json.loads((venv / "comfy-init-venv.json").read_text())["reinstalled"]["pins"] == ["foo==3.0"]
