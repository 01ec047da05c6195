"""ComfyUI's stdout and stderr pass through comfy-init unchanged (pid1.output), and nothing that
keeps the pipes open can hold comfy-init's exit."""

import os
import signal
import subprocess
import sys
import time

from tests.support.ports import free_port
from tests.support.standin import STANDIN_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_with(tmp_path, script_text, timeout=30):
    script = tmp_path / "fake-comfyui.py"  # stands in for ComfyUI: COMFY_PYTHON runs it
    script.write_text(f"#!{sys.executable}\n" + script_text)
    script.chmod(0o755)
    env = {"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "out-1", "COMFY_DEVICE": "cpu",
           "COMFY_DATA_DIRECTORY": str(tmp_path / "data"), "COMFY_APP_DIRECTORY": str(STANDIN_DIR),
           "COMFY_PORT": str(free_port()), "COMFY_PYTHON": str(script), "PYTHONPATH": ROOT,
           "PATH": os.environ["PATH"]}
    return subprocess.run([sys.executable, "-m", "comfy_init", "run"], env=env, capture_output=True,
                          timeout=timeout, start_new_session=True)


def test_bytes_pass_through_unchanged(tmp_path):
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value: more than a pipe holds
    (tmp_path / "payload").write_bytes(payload)
    result = run_with(tmp_path, f"""
import os, sys, time
out = sys.stdout.buffer
out.write(b"progress 1\\rprogress 2\\r"); out.flush()
time.sleep(0.2)
sys.stderr.buffer.write(b"[ERROR] to stderr\\n"); sys.stderr.flush()
out.write(open({str(tmp_path / 'payload')!r}, "rb").read()); out.flush()
out.write(b"no newline at the end"); out.flush()
sys.exit(3)
""")
    assert result.returncode == 3, result.stderr
    assert result.stdout == b"progress 1\rprogress 2\r" + payload + b"no newline at the end"
    assert b"[ERROR] to stderr\n" in result.stderr
    assert b"ComfyUI exited with code 3; comfy-init exits 3" in result.stderr


def test_a_detached_grandchild_keeping_the_pipe_does_not_hold_the_exit(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    started = time.monotonic()
    result = run_with(tmp_path, f"""
import subprocess, sys
child = subprocess.Popen(["sleep", "60"], start_new_session=True)  # inherits stdout and stderr
open({str(pid_file)!r}, "w").write(str(child.pid))
print("bye", flush=True)
""")
    took = time.monotonic() - started
    try:
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"bye\n"
        assert took < 15
    finally:
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def test_comfyui_prints_are_not_held_in_a_buffer(tmp_path):
    # A print without flush, then a long sleep: the line must be out before the process ends.
    marker = tmp_path / "seen"
    result = run_with(tmp_path, f"""
import os, sys, time
print("printed without flush")
time.sleep(0.1)
open({str(marker)!r}, "w").write(os.environ.get("PYTHONUNBUFFERED", ""))
""")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"printed without flush\n"
    assert marker.read_text() == "1"
