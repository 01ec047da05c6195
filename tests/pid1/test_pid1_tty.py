"""`docker run -it`: with a terminal, ComfyUI must be the terminal's foreground process group, or its
first read of stdin stops it (SIGTTIN) and the container hangs."""

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.support.ports import free_port
from tests.support.standin import STANDIN_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) from util-linux for a pseudo-terminal")
def test_comfyui_reads_the_terminal_in_the_foreground(tmp_path):
    answer = tmp_path / "answer"
    reader = tmp_path / "read-stdin.sh"  # stands in for ComfyUI: reads one line from the terminal
    reader.write_text(f'#!/bin/sh\nread line\necho "got:$line" > {answer}\n')
    reader.chmod(0o755)
    env = {"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "tty-1", "COMFY_DEVICE": "cpu",
           "COMFY_DATA_DIRECTORY": str(tmp_path / "data"), "COMFY_APP_DIRECTORY": str(STANDIN_DIR),
           "COMFY_PORT": str(free_port()), "COMFY_PYTHON": str(reader), "PYTHONPATH": ROOT}
    inner = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    inner += f" {shlex.quote(sys.executable)} -m comfy_init run"
    # script(1) runs comfy-init on a new pseudo-terminal and copies our stdin to it.
    typed = subprocess.Popen(["sh", "-c", "sleep 1.5; echo hello"], stdout=subprocess.PIPE)
    try:
        result = subprocess.run(["script", "-qec", inner, "/dev/null"], stdin=typed.stdout,
                                capture_output=True, text=True, timeout=30)
    finally:
        typed.kill()
        subprocess.run(["pkill", "-KILL", "-f", str(reader)])
    assert answer.read_text() == "got:hello\n", result.stdout
    assert result.returncode == 0, result.stdout
