"""Instance management against real processes: racing creates, and `run` meeting the registry's
configuration (a warning when the container differs, the dry run naming a live claim)."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from comfy_init.layout import Layout
from comfy_init.store.registry import Registry
from tests.support.ports import free_port
from tests.support.processes import COMFY_INIT, ComfyInitProcess, instance_env
from tests.support.standin import STANDIN_DIR

CLI = [sys.executable, "-m", "comfy_init"]


def test_sixteen_racing_creates_never_share_an_id_or_a_port(tmp_path):
    ids = [f"race-{index % 8}" for index in range(16)]  # every id wanted twice

    def create(instance_id):
        result = subprocess.run(CLI + ["instance", "create", instance_id, "--data", str(tmp_path), "--json"],
                                capture_output=True, text=True, timeout=120)
        return instance_id, result.returncode, json.loads(result.stdout)

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(create, ids))
    won = [(i, doc["data"]["config"]["port"]) for i, code, doc in outcomes if code == 0]
    lost = [(i, doc["problems"][0]["kind"]) for i, code, doc in outcomes if code != 0]
    assert sorted(i for i, _ in won) == sorted(set(ids)), outcomes
    assert len({port for _, port in won}) == len(won), won
    assert all(kind == "instance-exists" for _, kind in lost) and len(lost) == 8, lost
    document = Registry(Layout(str(tmp_path))).load()  # valid, or load would raise
    assert {i: e["port"] for i, e in document["instances"].items()} == dict(won)


def test_run_warns_when_its_port_differs_from_the_registered_one(tmp_path):
    registered, actual = free_port(), free_port()
    subprocess.run(CLI + ["instance", "create", "w-1", "--variant", "cpu", "--port", str(registered),
                          "--data", str(tmp_path / "data")], check=True, capture_output=True)
    env = instance_env(instance_id="w-1", data=tmp_path / "data", app=STANDIN_DIR, port=actual)
    run = ComfyInitProcess(env, tmp_path).start()
    try:
        run.wait_ready()
        assert (f"WARNING: comfy-init[w-1]: COMFY_PORT={actual} but the registry configures port {registered} "
                "for 'w-1'") in run.stderr()
        dry = subprocess.run(COMFY_INIT + ["--dry-run", "--json"], env=env, capture_output=True, text=True, timeout=60)
        claim = json.loads(dry.stdout)["data"]["claim"]
        assert claim["state"] == "running here" and claim["holder"]["port"] == actual
        text = subprocess.run(COMFY_INIT + ["--dry-run"], env=env, capture_output=True, text=True, timeout=60).stdout
        assert "a start now would be refused (exit 75)" in text
    finally:
        assert run.stop() == 0, run.output()
    dry = subprocess.run(COMFY_INIT + ["--dry-run", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(dry.stdout)["data"]["claim"] == {"state": "free", "holder": None}


def test_list_probes_a_running_instance(tmp_path):
    port = free_port()
    subprocess.run(CLI + ["instance", "create", "l-1", "--variant", "cpu", "--port", str(port),
                          "--data", str(tmp_path / "data")], check=True, capture_output=True)
    run = ComfyInitProcess(instance_env(instance_id="l-1", data=tmp_path / "data", app=STANDIN_DIR, port=port),
                           tmp_path).start()
    try:
        run.wait_ready()
        listed = subprocess.run(CLI + ["instance", "list", "--json", "--data", str(tmp_path / "data")],
                                capture_output=True, text=True, timeout=60)
        row = json.loads(listed.stdout)["data"]["instances"][0]
        assert (row["id"], row["state"], row["health"]) == ("l-1", "running here", "ok")
        assert row["comfyui_version"] and row["holder"]["pid"] == run.pid
        deleted = subprocess.run(CLI + ["instance", "delete", "l-1", "--yes", "--data", str(tmp_path / "data")],
                                 capture_output=True, text=True, timeout=60)
        assert deleted.returncode == 75 and (tmp_path / "data" / "instances" / "l-1").is_dir()
    finally:
        assert run.stop() == 0, run.output()
