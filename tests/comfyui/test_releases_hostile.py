"""Hostile review of the ComfyUI release behaviours (issue 13): ComfyUI's output through pipes and
its ASSETS_STARTUP_FAILED refusal, and the release probe. The "ComfyUI" is a real process that
comfy-init starts and supervises (COMFY_PYTHON runs it) and that answers /system_stats as ComfyUI
does, so comfy-init sees it become ready."""

import os
import subprocess
import sys
import time

from comfy_init.comfyui.releases import features_of
from tests.support.ports import free_port
from tests.support.standin import STANDIN_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Serves /system_stats on the --port comfy-init gives; `body` runs once comfy-init has asked
# (it marks ComfyUI ready right after the answer: the sleep leaves it time to).
SERVING = r'''
import http.server, os, sys, threading, time
port = int(sys.argv[sys.argv.index("--port") + 1])
asked = threading.Event()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(b"{}"); asked.set()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
'''


def run_with(tmp_path, script_text, timeout=60):
    script = tmp_path / "fake-comfyui.py"
    script.write_text(f"#!{sys.executable}\n" + script_text)
    script.chmod(0o755)
    env = {"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "rel-1", "COMFY_DEVICE": "cpu",
           "COMFY_DATA_DIRECTORY": str(tmp_path / "data"), "COMFY_APP_DIRECTORY": str(STANDIN_DIR),
           "COMFY_PORT": str(free_port()), "COMFY_PYTHON": str(script), "PYTHONPATH": ROOT,
           "PATH": os.environ["PATH"], "COMFY_VENV": "off"}
    return subprocess.run([sys.executable, "-m", "comfy_init", "run"], env=env, capture_output=True,
                          timeout=timeout, start_new_session=True)


def test_a_marker_printed_at_run_time_does_not_turn_a_later_exit_into_a_refusal(tmp_path):
    # A custom node (or a workflow's log line) prints the marker long after ComfyUI started; ComfyUI
    # later exits 1 for another reason. That is ComfyUI's exit 1, not "its database is in use" (75,
    # the code an orchestrator treats as "try again later").
    result = run_with(tmp_path, SERVING + r'''
asked.wait(30); time.sleep(1.5)
sys.stderr.write("[my-node] relaying a message: ASSETS_STARTUP_FAILED: in_use\n"); sys.stderr.flush()
time.sleep(0.3)
sys.exit(1)
''')
    assert b"ComfyUI is ready" in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    assert b"refused to start" not in result.stderr and b"database-in-use" not in result.stderr


def test_the_real_start_up_refusal_is_still_one_line_with_its_code_even_after_invalid_utf8(tmp_path):
    result = run_with(tmp_path, r'''
import sys
sys.stderr.buffer.write(b"\xff\xfe\x1b[31m[ERROR] ASSETS_STARTUP_FAILED: in_use\x1b[0m\n"
                        b"The database '/x/comfyui.db' is in use by another ComfyUI process.\n")
sys.stderr.flush()
sys.exit(1)
''')
    assert result.returncode == 75, result.stderr
    assert result.stderr.count(b"ComfyUI refused to start") == 1


def test_a_comfyui_that_closes_its_output_but_keeps_running_is_still_supervised(tmp_path):
    started = time.monotonic()
    result = run_with(tmp_path, r'''
import os, sys, time
print("closing my output", flush=True)
os.close(1); os.close(2)
time.sleep(1.0)
sys.exit(4)
''')
    assert result.returncode == 4, result.stderr
    assert result.stdout == b"closing my output\n"
    assert time.monotonic() - started < 20


def test_a_huge_line_without_newline_then_the_marker_is_found(tmp_path):
    result = run_with(tmp_path, r'''
import sys
sys.stderr.buffer.write(b"x" * 300000)  # a progress bar redrawn with \r, never ending its line
sys.stderr.buffer.write(b"\rASSETS_STARTUP_FAILED: corrupt\n"); sys.stderr.flush()
sys.exit(1)
''')
    assert result.returncode == 65, result.stderr[-2000:]
    assert b"is corrupt" in result.stderr


def test_a_flag_in_a_commented_out_line_is_not_a_declared_flag():
    # A fork that turned a flag off by commenting its line out: comfy-init would pass the flag and
    # ComfyUI's argparse exit 2.
    source = (
        'parser.add_argument("--base-directory", type=str, default=None, help="Set the base directory.")\n'
        '# parser.add_argument("--enable-manager", action="store_true", help="Enable the ComfyUI-Manager.")\n'
        '    #parser.add_argument("--database-url", type=str, default=None)\n'
        'parser.add_argument("--cuda-device", type=int, default=None, metavar="DEVICE_ID")\n'
    )
    found = features_of(source)
    assert found["base_directory"] is True
    assert found["enable_manager"] is False and found["database_url"] is False
    assert found["cuda_device_list"] is False


def test_a_missing_or_unreadable_cli_args_gives_an_old_release_not_a_crash(tmp_path):
    from comfy_init.comfyui.checkout import probe_checkout

    checkout = tmp_path / "comfyui"
    checkout.mkdir()
    (checkout / "main.py").write_text("")
    assert probe_checkout(str(checkout)).declared() == []
    (checkout / "comfy").mkdir()
    (checkout / "comfy" / "cli_args.py").mkdir()  # not a file at all
    assert probe_checkout(str(checkout)).declared() == []
    (checkout / "comfy" / "cli_args.py").rmdir()
    (checkout / "comfy" / "cli_args.py").write_bytes(b'\xff\xfe parser.add_argument("--base-directory")\n')
    assert probe_checkout(str(checkout)).declared() == ["base_directory"]
