import http.server
import json
import subprocess
import sys
import threading

import pytest

from tests.support.ports import free_port


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        body = json.dumps({"system": {"comfyui_version": "9.9.9"}}).encode()
        self.send_response(self.status if self.path == "/system_stats" else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield port, httpd
    httpd.shutdown()
    httpd.server_close()


def health(port, *args):
    env = {"COMFY_PORT": str(port), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "comfy_init", "health", *args], env=env,
                          capture_output=True, text=True, timeout=30)


def test_healthy_when_system_stats_answers(server):
    port, _ = server
    result = health(port)
    assert result.returncode == 0
    assert result.stdout.startswith(f"healthy: http://127.0.0.1:{port}/system_stats: ComfyUI 9.9.9 answered")
    envelope = json.loads(health(port, "--json").stdout)
    assert (envelope["command"], envelope["status"], envelope["exit_code"]) == ("health", "ok", 0)
    assert envelope["data"]["healthy"] is True


def test_unhealthy_on_an_error_status(server, monkeypatch):
    port, _ = server
    monkeypatch.setattr(_Handler, "status", 500)
    result = health(port)
    assert result.returncode == 1
    assert result.stderr.startswith(f"ERROR: comfy-init: unhealthy: http://127.0.0.1:{port}/system_stats: answered HTTP 500")
    envelope = json.loads(health(port, "--json").stdout)
    assert (envelope["status"], envelope["exit_code"], envelope["data"]["healthy"]) == ("failed", 1, False)
    assert [p["kind"] for p in envelope["problems"]] == ["unhealthy"]


def test_unhealthy_when_nothing_listens():
    result = health(free_port(), "--timeout", "1")
    assert result.returncode == 1
    assert result.stderr.startswith("ERROR: comfy-init: unhealthy:") and result.stdout == ""


def test_bad_configuration_exits_78():
    result = subprocess.run([sys.executable, "-m", "comfy_init", "health"], env={"COMFY_PORT": "x"},
                            capture_output=True, text=True)
    assert result.returncode == 78
    assert result.stderr.startswith("ERROR: comfy-init: COMFY_PORT='x'")


def test_top_level_help_lists_the_commands():
    result = subprocess.run([sys.executable, "-m", "comfy_init", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "run" in result.stdout and "health" in result.stdout
