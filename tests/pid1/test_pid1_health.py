"""`comfy-init health` where the HEALTHCHECK runs it: inside the PID namespace of a comfy-init that
is PID 1 (its claim records pid 1; /proc/locks there shows the lock held by pid 1). From outside
the namespace the pids cannot be compared, so only host, container and lock count."""

import json
import subprocess
import sys

import pytest

from comfy_init.layout import Layout
from comfy_init.store import claimfiles
from comfy_init.store.registry import Registry

pytestmark = [pytest.mark.pid1, pytest.mark.usefixtures("pid_namespace")]


def health_in(run, env, inside=True):
    enter = ["nsenter", f"--target={run.init_pid}", "--pid", "--mount", "--"] if inside else []
    result = subprocess.run(enter + [sys.executable, "-m", "comfy_init", "health", "--json"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_health_inside_the_namespace_sees_pid_1_hold_the_claim(setup, launch):
    env = setup.env(COMFY_CLAIM_LEASE=3600)
    run = launch(env)
    run.wait_ready()
    assert setup.registry()["claims"][setup.instance_id]["pid"] == 1
    code, envelope = health_in(run, env)
    assert (code, envelope["data"]["claim"], envelope["problems"]) == (0, "ok", []), envelope
    assert health_in(run, env, inside=False)[0] == 0  # from the host: no pid verdict, still healthy

    # The claim now names another process: in its claim file, which decides (store.claimfiles),
    # and in the registry's view of it.
    layout = Layout(str(setup.data))
    with Registry(layout).transaction() as document:
        document["claims"][setup.instance_id]["pid"] = 7
        generation = document["claims"][setup.instance_id]["generation"]
    claimfiles.rewrite(layout, setup.instance_id,
                       dict(claimfiles.read(layout, setup.instance_id, generation), pid=7))
    code, envelope = health_in(run, env)
    assert code == 75 and [p["kind"] for p in envelope["problems"]] == ["claim-lost"]
    assert "held by pid 1, but its claim names pid 7" in envelope["problems"][0]["message"]
    assert run.stop() == 0, run.output()
