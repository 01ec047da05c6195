"""The stand-in ComfyUI behaves like the ComfyUI facts in DESIGN.md say ComfyUI does.

Every test runs the stand-in as a real process on a free port; the `standin` fixture kills
whatever is still running at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
from pathlib import Path

import pytest

from tests.support.processes import default_sigint, spawn
from tests.support.http import get_json, post_json
from tests.support.ports import free_port
from tests.support.standin import STANDIN_DIR, make_checkout
from tests.support.waiting import wait_until


class Running:
    """One stand-in process with its port and captured output."""

    def __init__(self, proc: subprocess.Popen, port: int, out: Path, err: Path):
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._out = out
        self._err = err

    @property
    def stdout(self) -> str:
        return self._out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self._err.read_text(errors="replace")

    def get(self, path: str):
        return get_json(self.url + path)

    def wait_ready(self, timeout: float = 5.0) -> dict:
        """Wait for GET /system_stats to answer 200; fail with the output if the process ended."""
        def answered_or_exited():
            if self.proc.poll() is not None:
                return "exited"
            return self.get("/system_stats")

        result = wait_until(answered_or_exited, timeout=timeout)
        if result == "exited":
            pytest.fail(f"stand-in exited with {self.proc.returncode} before it was ready\n"
                        f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}")
        return result

    def wait_exit(self, timeout: float = 5.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"stand-in still running after {timeout} s\nstdout:\n{self.stdout}\n"
                        f"stderr:\n{self.stderr}")


class Launcher:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.running: list[Running] = []

    def start(self, *args: str, checkout: Path = STANDIN_DIR, port: int | None = None,
              env: dict[str, str] | None = None, **popen_kwargs) -> Running:
        port = free_port() if port is None else port
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("STANDIN_") and k != "__COMFY_CLI_SESSION__"}
        full_env.update(env or {})
        n = len(self.running)
        out = self.tmp_path / f"standin-{n}.out"
        err = self.tmp_path / f"standin-{n}.err"
        with open(out, "wb") as fout, open(err, "wb") as ferr:
            proc = spawn(  # SIGINT at its default, even under a pytest that ignores it
                [sys.executable, str(checkout / "main.py"), "--listen", "127.0.0.1",
                 "--port", str(port), *args],
                stdout=fout, stderr=ferr, stdin=subprocess.DEVNULL, env=full_env,
                **popen_kwargs,
            )
        running = Running(proc, port, out, err)
        self.running.append(running)
        return running

    def stop_all(self) -> None:
        for running in self.running:
            if running.proc.poll() is None:
                running.proc.kill()
            running.proc.wait(timeout=5)


@pytest.fixture
def standin(tmp_path):
    launcher = Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture
def base(tmp_path) -> Path:
    """A base directory with the one folder ComfyUI insists on."""
    base = tmp_path / "base"
    (base / "custom_nodes").mkdir(parents=True)
    return base


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A private copy of the stand-in, for runs that write into the checkout itself."""
    checkout = make_checkout(tmp_path / "ComfyUI")
    (checkout / "custom_nodes").mkdir()
    return checkout


# --- folders ------------------------------------------------------------------------------------


def test_folders_follow_base_directory(standin, base):
    comfy = standin.start("--base-directory", str(base))
    stats = comfy.wait_ready()
    paths = comfy.get("/internal/folder_paths")

    models = base / "models"
    assert paths["checkpoints"] == [str(models / "checkpoints")]
    assert paths["text_encoders"] == [str(models / "text_encoders"), str(models / "clip")]
    assert paths["diffusion_models"] == [str(models / "unet"), str(models / "diffusion_models")]
    assert paths["controlnet"] == [str(models / "controlnet"), str(models / "t2i_adapter")]
    assert paths["custom_nodes"] == [str(base / "custom_nodes")]
    for name in ("output", "temp", "input", "user"):
        assert paths[name] == [str(base / name)]
    # Without --database-url the database stays in the checkout, whatever the base directory.
    assert paths["database"] == [str(STANDIN_DIR / "user" / "comfyui.db")]
    for name in ("loras", "vae", "embeddings", "upscale_models", "model_patches", "audio_encoders"):
        assert paths[name] == [str(models / name)]

    system = stats["system"]
    assert system["comfyui_version"] == "0.3.64-standin"
    assert system["pid"] == comfy.proc.pid
    assert system["uid"] == os.getuid() and system["gid"] == os.getgid()
    assert system["argv"][-2:] == ["--base-directory", str(base)]
    assert stats["devices"] == [{"name": "cuda:0 standin", "type": "cuda", "index": 0}]
    assert f"To see the GUI go to: http://127.0.0.1:{comfy.port}" in comfy.stdout


def test_folders_default_to_the_checkout(standin, checkout):
    comfy = standin.start("--cpu", checkout=checkout)
    stats = comfy.wait_ready()
    paths = comfy.get("/internal/folder_paths")

    assert paths["checkpoints"] == [str(checkout / "models" / "checkpoints")]
    assert paths["custom_nodes"] == [str(checkout / "custom_nodes")]
    assert paths["temp"] == [str(checkout / "temp")]
    assert paths["database"] == [str(checkout / "user" / "comfyui.db")]
    assert stats["devices"] == [{"name": "cpu", "type": "cpu", "index": None}]
    # The checkout has no user/: ComfyUI logs the failure and serves anyway.
    wait_until(lambda: "unable to open database file" in comfy.stderr, timeout=2)
    assert "Failed to initialize database" in comfy.stderr


def test_overrides_and_temp_directory_means_its_temp_subfolder(standin, base, tmp_path):
    out, inp, user, tmp = (tmp_path / n for n in ("out", "in", "user", "scratch"))
    user.mkdir()
    comfy = standin.start("--base-directory", str(base), "--output-directory", str(out),
                          "--input-directory", str(inp), "--user-directory", str(user),
                          "--temp-directory", str(tmp), "--cuda-device", "1")
    stats = comfy.wait_ready()
    paths = comfy.get("/internal/folder_paths")

    assert paths["output"] == [str(out)]
    assert paths["input"] == [str(inp)]
    assert paths["user"] == [str(user)]
    assert paths["temp"] == [str(tmp / "temp")]
    assert (tmp / "temp" / f"standin-{comfy.proc.pid}.txt").is_file()
    assert not (base / "temp").exists()
    assert stats["devices"] == [{"name": "cuda:1 standin", "type": "cuda", "index": 1}]


def test_user_directory_must_exist(standin, base, tmp_path):
    comfy = standin.start("--base-directory", str(base), "--user-directory", str(tmp_path / "no"))
    assert comfy.wait_exit() == 2
    assert "is not a valid directory" in comfy.stderr


def test_bare_listen_means_all_addresses(standin, base):
    port = free_port()
    comfy = standin.start("--base-directory", str(base), "--listen", port=port)
    comfy.wait_ready()
    assert f"To see the GUI go to: http://0.0.0.0:{port}" in comfy.stdout


# --- temp and signals ---------------------------------------------------------------------------


def test_temp_wiped_at_start_and_removed_by_sigint(standin, base):
    (base / "temp" / "old").mkdir(parents=True)
    (base / "temp" / "old" / "file.png").write_text("another instance's file")
    (base / "output").mkdir()
    (base / "output" / "keep.png").write_text("kept")
    comfy = standin.start("--base-directory", str(base))
    comfy.wait_ready()

    assert sorted(os.listdir(base / "temp")) == [f"standin-{comfy.proc.pid}.txt"]
    comfy.proc.send_signal(signal.SIGINT)
    assert comfy.wait_exit() == 0
    assert not (base / "temp").exists()  # the directory itself, like ComfyUI's cleanup_temp
    assert (base / "output" / "keep.png").read_text() == "kept"
    assert "Stopped server" in comfy.stdout


def test_sigterm_kills_at_once_without_cleanup(standin, base):
    comfy = standin.start("--base-directory", str(base))
    comfy.wait_ready()
    comfy.proc.send_signal(signal.SIGTERM)
    assert comfy.wait_exit() == -signal.SIGTERM
    assert (base / "temp" / f"standin-{comfy.proc.pid}.txt").is_file()


def test_sigint_does_nothing_when_started_with_sigint_ignored(standin, base):
    comfy = standin.start(
        "--base-directory", str(base),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    comfy.wait_ready()
    comfy.proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert comfy.proc.poll() is None
    comfy.get("/system_stats")
    comfy.proc.kill()
    assert comfy.wait_exit() == -signal.SIGKILL


def test_standin_ignore_sigint_knob(standin, base):
    comfy = standin.start("--base-directory", str(base), env={"STANDIN_IGNORE_SIGINT": "1"})
    comfy.wait_ready()
    comfy.proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert comfy.proc.poll() is None


# --- start-up failures --------------------------------------------------------------------------


def test_missing_custom_nodes_crashes(standin, tmp_path):
    comfy = standin.start("--base-directory", str(tmp_path / "empty"))
    assert comfy.wait_exit() == 1
    assert "FileNotFoundError" in comfy.stderr
    assert "Traceback" in comfy.stderr


def test_port_in_use_exits_1(standin, base):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        comfy = standin.start("--base-directory", str(base), port=port)
        assert comfy.wait_exit() == 1
    assert "address already in use" in comfy.stderr


def test_second_process_on_the_same_database_exits_1(standin, base, tmp_path):
    database = tmp_path / "db" / "comfyui.db"
    database.parent.mkdir()
    url = f"sqlite:///{database}"
    first = standin.start("--base-directory", str(base), "--database-url", url)
    first.wait_ready()
    assert first.get("/internal/folder_paths")["database"] == [str(database)]
    with sqlite3.connect(database) as connection:
        tables = connection.execute("select name from sqlite_master").fetchall()
    assert ("standin",) in tables

    other_base = tmp_path / "other"
    (other_base / "custom_nodes").mkdir(parents=True)
    second = standin.start("--base-directory", str(other_base), "--database-url", url)
    assert second.wait_exit() == 1
    assert "database is locked" in second.stderr

    # Once the first one is gone, the database is free again.
    first.proc.send_signal(signal.SIGINT)
    assert first.wait_exit() == 0
    third = standin.start("--base-directory", str(other_base), "--database-url", url)
    third.wait_ready()


def test_exit_code_and_signal_knobs(standin, base):
    comfy = standin.start("--base-directory", str(base), env={"STANDIN_EXIT_CODE": "3"})
    assert comfy.wait_exit() == 3
    comfy = standin.start("--base-directory", str(base), env={"STANDIN_EXIT_SIGNAL": "2"})
    assert comfy.wait_exit() == -signal.SIGINT
    # Arguments are parsed first, as ComfyUI parses them at import.
    comfy = standin.start("--no-such-flag", env={"STANDIN_EXIT_CODE": "3"})
    assert comfy.wait_exit() == 2


def test_startup_delay_postpones_readiness(standin, base):
    started = time.monotonic()
    comfy = standin.start("--base-directory", str(base), env={"STANDIN_STARTUP_DELAY": "0.6"})
    comfy.wait_ready()
    assert time.monotonic() - started >= 0.6


def test_ready_quickly(standin, base):
    started = time.monotonic()
    comfy = standin.start("--base-directory", str(base))
    comfy.wait_ready()
    assert time.monotonic() - started < 2.0  # well under 0.5 s on an idle machine


# --- old releases -------------------------------------------------------------------------------


def test_old_release_rejects_base_directory(standin, base, tmp_path):
    old = make_checkout(tmp_path / "old", base_directory=False)
    text = (old / "comfy" / "cli_args.py").read_text()
    assert '"--base-directory"' not in text
    assert '"--database-url"' in text
    assert '"--base-directory"' in (STANDIN_DIR / "comfy" / "cli_args.py").read_text()

    comfy = standin.start("--base-directory", str(base), checkout=old)
    assert comfy.wait_exit() == 2
    assert "unrecognized arguments: --base-directory" in comfy.stderr


def test_old_release_without_database_url(standin, base, tmp_path):
    old = make_checkout(tmp_path / "old", base_directory=False, database_url=False)
    text = (old / "comfy" / "cli_args.py").read_text()
    assert '"--database-url"' not in text and '"--base-directory"' not in text
    (old / "custom_nodes").mkdir()
    (old / "user").mkdir()
    comfy = standin.start("--database-url", f"sqlite:///{tmp_path / 'x.db'}", checkout=old)
    assert comfy.wait_exit() == 2

    comfy = standin.start(checkout=old)
    comfy.wait_ready()
    assert comfy.get("/internal/folder_paths")["database"] == [str(old / "user" / "comfyui.db")]
    assert (old / "user" / "comfyui.db").is_file()


# --- models and files ---------------------------------------------------------------------------


def test_models_lists_files_by_folder(standin, base):
    models = base / "models"
    (models / "checkpoints" / "sd").mkdir(parents=True)
    (models / "checkpoints" / "sd" / "v1.safetensors").write_bytes(b"x")
    (models / "checkpoints" / "notes.txt").write_text("not a model")
    (models / "clip").mkdir()
    (models / "clip" / "t5.sft").write_bytes(b"x")
    (models / "configs").mkdir()
    (models / "configs" / "v1.yaml").write_text("x")
    comfy = standin.start("--base-directory", str(base))
    comfy.wait_ready()

    assert "checkpoints" in comfy.get("/models")
    assert comfy.get("/models/checkpoints") == ["sd/v1.safetensors"]
    assert comfy.get("/models/text_encoders") == ["t5.sft"]
    assert comfy.get("/models/configs") == ["v1.yaml"]
    assert comfy.get("/models/loras") == []
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        comfy.get("/models/no_such_folder")
    assert excinfo.value.code == 404


def test_output_numbering_and_temp_files(standin, base):
    comfy = standin.start("--base-directory", str(base))
    comfy.wait_ready()
    first = post_json(comfy.url + "/standin/output?name=img")
    second = post_json(comfy.url + "/standin/output?name=img")
    assert first["path"] == str(base / "output" / "img_00001_.png")
    assert second["path"] == str(base / "output" / "img_00002_.png")
    scratch = post_json(comfy.url + "/standin/temp?name=preview.png")
    assert scratch["path"] == str(base / "temp" / "preview.png")
    assert Path(scratch["path"]).stat().st_uid == os.getuid()


# --- ComfyUI-Manager restart, log file, orphans -------------------------------------------------


def test_manager_reboot_once_per_marker(standin, base, tmp_path):
    marker = tmp_path / "rebooted"
    session = tmp_path / "session"
    log_file = tmp_path / "events.jsonl"
    env = {"STANDIN_MANAGER_REBOOT": str(marker), "__COMFY_CLI_SESSION__": str(session),
           "STANDIN_LOG_FILE": str(log_file)}
    reboot_file = tmp_path / "session.reboot"

    first = standin.start("--base-directory", str(base), env=env)
    assert first.wait_exit() == 0
    assert reboot_file.is_file() and marker.is_file()
    assert not (base / "temp").exists()

    reboot_file.unlink()
    second = standin.start("--base-directory", str(base), env=env)
    second.wait_ready()
    time.sleep(0.2)
    assert second.proc.poll() is None
    assert not reboot_file.exists()
    second.proc.send_signal(signal.SIGINT)
    assert second.wait_exit() == 0

    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [e["event"] for e in events] == [
        "started", "serving", "reboot_requested", "reboot_exit",
        "started", "serving", "graceful_exit",
    ]
    assert events[0]["pid"] == first.proc.pid and events[4]["pid"] == second.proc.pid
    assert events[0]["argv"][-2:] == ["--base-directory", str(base)]


def test_manager_reboot_needs_the_session_variable(standin, base, tmp_path):
    comfy = standin.start("--base-directory", str(base),
                          env={"STANDIN_MANAGER_REBOOT": str(tmp_path / "marker")})
    comfy.wait_ready()
    time.sleep(0.2)
    assert comfy.proc.poll() is None
    assert not (tmp_path / "marker").exists()


SUBREAPER = textwrap.dedent("""
    import ctypes, json, os, subprocess, sys, time, urllib.request
    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(json.dumps({"skip": "prctl failed"})); sys.exit(0)
    main_py, base, port = sys.argv[1:4]
    env = dict(os.environ, STANDIN_ORPHANS="3", STANDIN_ORPHAN_SLEEP="0.2")
    comfy = subprocess.Popen([sys.executable, main_py, "--port", port, "--base-directory", base],
                             env=env, stdout=subprocess.DEVNULL)
    reaped = []
    deadline = time.monotonic() + 8
    while len(reaped) < 3 and time.monotonic() < deadline:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.02)
        elif pid == comfy.pid:
            break
        else:
            reaped.append(os.waitstatus_to_exitcode(status))
    alive = comfy.poll() is None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/system_stats", timeout=2) as r:
        ok = r.status == 200
    comfy.send_signal(2)
    print(json.dumps({"reaped": reaped, "alive": alive, "ok": ok, "rc": comfy.wait(5)}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="subreapers are Linux only")
def test_orphans_are_left_to_the_subreaper(base):
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-c", SUBREAPER, str(STANDIN_DIR / "main.py"), str(base), str(port)],
        capture_output=True, text=True, timeout=15, preexec_fn=default_sigint,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if "skip" in report:
        pytest.skip(report["skip"])
    assert report == {"reaped": [0, 0, 0], "alive": True, "ok": True, "rc": 0}
