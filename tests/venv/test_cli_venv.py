"""`comfy-init venv show|freeze|rebuild` on real environments (CliRunner, the envelope checked)."""

import json
import subprocess
import sys
import threading
import time

from tests.support.cli import envelope, invoke
from tests.support.ports import free_port
from tests.support.processes import instance_env
from tests.venv.conftest import STANDIN, imported, offline


def made(tmp_path, image, wheelhouse, monkeypatch, instance_id="a", *pins):
    """An instance started once (its environment made), with `pins` installed into it."""
    env = dict(offline(wheelhouse), **{k: v for k, v in instance_env(
        instance_id=instance_id, data=tmp_path / "data", app=STANDIN, port=free_port(), COMFY_PYTHON=image,
        STANDIN_EXIT_CODE="0").items() if not k.startswith("PIP_")})
    done = subprocess.run([sys.executable, "-m", "comfy_init", "run"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    venv = tmp_path / "data" / "instances" / instance_id / "venv"
    if pins:
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", *pins], env=offline(wheelhouse),
                       check=True, capture_output=True)
    for name, value in offline(wheelhouse).items():
        if name.startswith("PIP_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("COMFY_PYTHON", str(image))
    monkeypatch.setenv("COMFY_APP_DIRECTORY", str(STANDIN))
    return venv


def test_show_and_freeze_name_the_environment_and_its_own_packages(tmp_path, image, wheelhouse, monkeypatch):
    venv = made(tmp_path, image, wheelhouse, monkeypatch, "a", "foo==2.0", "bar==1.0")
    shown = envelope(tmp_path / "data", "venv", "show", "a")
    assert shown["status"] == "ok"
    data = shown["data"]
    assert data["path"] == str(venv) and data["matches"] is True and data["state"] == "ready"
    assert data["packages"] == ["bar==1.0", "foo==2.0"] and data["size_bytes"] > 0 and data["size_walks"]
    assert data["made_for"]["torch"] == "1.0"
    text = invoke(tmp_path / "data", "venv", "show", "a").output
    assert "matches:      yes" in text and "foo==2.0" in text
    frozen = invoke(tmp_path / "data", "venv", "freeze", "a")
    assert frozen.exit_code == 0 and frozen.output.splitlines() == ["bar==1.0", "foo==2.0"]
    # The same as pip's own freeze of the environment's site-packages.
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--path",
                          str(next(venv.glob("lib/python*/site-packages")))], capture_output=True, text=True)
    assert pip.stdout.splitlines() == ["bar==1.0", "foo==2.0"]


def test_show_and_freeze_of_an_unknown_instance_or_missing_environment(tmp_path, image, wheelhouse, monkeypatch):
    made(tmp_path, image, wheelhouse, monkeypatch, "a")
    assert envelope(tmp_path / "data", "venv", "show", "zz")["problems"][0]["kind"] == "unknown-instance"
    (tmp_path / "data" / "instances" / "b").mkdir()
    missing = envelope(tmp_path / "data", "venv", "freeze", "b")
    assert missing["exit_code"] == 66 and "has no environment yet" in missing["problems"][0]["message"]
    assert envelope(tmp_path / "data", "venv", "show", "b")["data"]["state"] == "create"


def cli_process(data, *args):
    """The CLI as a process: the envelope from stdout, pip's progress lines on stderr."""
    done = subprocess.run([sys.executable, "-m", "comfy_init", *args, "--data", str(data), "--json"],
                          capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout), done.stderr


def test_rebuild_moves_aside_and_reinstalls_the_own_packages(tmp_path, image, wheelhouse, monkeypatch):
    venv = made(tmp_path, image, wheelhouse, monkeypatch, "a", "foo==3.0")
    done, progress = cli_process(tmp_path / "data", "venv", "rebuild", "a")
    assert done["status"] == "ok", done
    assert "rebuilding the environment (asked for: it matches this image)" in progress
    assert "pip: Successfully installed foo-3.0" in progress
    assert done["data"]["pins"] == ["foo==3.0"]
    moved = done["data"]["moved_to"]
    assert imported(f"{moved}/bin/python", "foo")[0] == "3.0"  # the old one, whole
    version, where = imported(venv / "bin" / "python", "foo")
    assert version == "3.0" and where.startswith(str(venv))
    assert json.loads((venv / "comfy-init-venv.json").read_text())["reinstalled"]["pins"] == ["foo==3.0"]


def test_rebuild_is_refused_while_the_instance_runs(tmp_path, image, wheelhouse, monkeypatch):
    venv = made(tmp_path, image, wheelhouse, monkeypatch, "a", "foo==2.0")
    env = dict(offline(wheelhouse), **{k: v for k, v in instance_env(
        instance_id="a", data=tmp_path / "data", app=STANDIN, port=free_port(), COMFY_PYTHON=image).items()
        if not k.startswith("PIP_")})
    running = subprocess.Popen([sys.executable, "-m", "comfy_init", "run"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(running.stderr), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not any("started ComfyUI" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = envelope(tmp_path / "data", "venv", "rebuild", "a")
        assert refused["exit_code"] == 75 and refused["problems"][0]["kind"] == "instance-held"
        assert "stop the instance first" in refused["problems"][0]["fix"]
        assert not list(venv.parent.glob("venv.moved-*"))
    finally:
        running.terminate()
        running.wait(timeout=30)
