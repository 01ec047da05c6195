"""The running comfy-init's watch (boot.watch): links broken and folders swapped under a running
instance, and its claim record removed, each logged as ONE warning however many checks see it,
and an INFO line once repaired. COMFY_WATCH_INTERVAL makes the checks frequent; the renewal is
kept out of the way (a lease of an hour) so the removed record stays removed.

Counting "once" needs no clock: a later finding's warning proves that further checks ran while
the earlier finding stood."""

import os
import subprocess
import sys

import pytest

from comfy_init.layout import Layout
from comfy_init.store.registry import Registry
from tests.support.ports import free_port
from tests.support.processes import COMFY_INIT, ComfyInitProcess, instance_env
from tests.support.standin import STANDIN_DIR


@pytest.fixture
def running(tmp_path):
    data = tmp_path / "data"
    env = instance_env(instance_id="w-1", data=data, app=STANDIN_DIR, port=free_port(),
                       COMFY_WATCH_INTERVAL="0.1", COMFY_CLAIM_LEASE="3600")
    run = ComfyInitProcess(env, tmp_path).start()
    try:
        run.wait_ready()
        (data / "instances" / "other" / "output").mkdir(parents=True)
        yield run, Layout(str(data)), Layout(str(data)).instance("w-1")
    finally:
        run.stop()


def warnings(run, text):
    return [line for line in run.stderr().splitlines() if line.startswith("WARNING: ") and text in line]


def test_each_finding_is_warned_once_and_its_end_is_told(running):
    run, layout, instance = running
    os.unlink(instance.models)
    os.symlink("../other/output", instance.models)
    run.wait_logged(f"WARNING: comfy-init[w-1]: {instance.models}: is a link to '../other/output'")

    os.rename(instance.output, instance.output + ".kept")
    os.symlink("../other/output", instance.output)
    run.wait_logged(f"WARNING: comfy-init[w-1]: {instance.output}: resolves to")
    assert len(warnings(run, f"{instance.models}:")) == 1, run.output()

    os.unlink(instance.models)
    os.symlink("../../shared/models", instance.models)
    run.wait_logged(f"INFO: comfy-init[w-1]: no longer: {instance.models}: is a link to '../other/output'")

    with Registry(layout).transaction() as document:
        del document["claims"]["w-1"]
    run.wait_logged("has no claim in the registry any more")
    os.unlink(instance.output)
    os.rename(instance.output + ".kept", instance.output)
    run.wait_logged(f"INFO: comfy-init[w-1]: no longer: {instance.output}: resolves to")
    assert len(warnings(run, f"{instance.models}:")) == 1
    assert len(warnings(run, f"{instance.output}:")) == 1
    assert len(warnings(run, "has no claim in the registry")) == 1, run.output()
    assert run.proc.poll() is None, "the watch only warns: ComfyUI keeps running"
    assert run.stop() == 0, run.output()


def test_a_replaced_models_link_is_caught_while_comfyui_serves(running):
    run, layout, instance = running
    os.unlink(instance.models)
    os.mkdir(instance.models)
    run.wait_logged(f"WARNING: comfy-init[w-1]: {instance.models}: is no longer a link to {layout.shared_models}")
    assert run.wait_ready()["system"]["comfyui_version"]


def test_a_bad_interval_is_refused_before_anything_starts(tmp_path):
    env = instance_env(instance_id="w-2", data=tmp_path / "data", app=STANDIN_DIR, port=free_port(),
                       COMFY_WATCH_INTERVAL="soon")
    result = subprocess.run(COMFY_INIT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert "COMFY_WATCH_INTERVAL='soon': must be a number of seconds from 0 to 86400; e.g. COMFY_WATCH_INTERVAL=60" \
        in result.stderr
    assert not (tmp_path / "data").exists()


def test_zero_turns_the_watch_off(tmp_path):
    env = instance_env(instance_id="w-3", data=tmp_path / "data", app=STANDIN_DIR, port=free_port(),
                       COMFY_WATCH_INTERVAL="0")
    run = ComfyInitProcess(env, tmp_path).start()
    try:
        run.wait_ready()
        instance = Layout(str(tmp_path / "data")).instance("w-3")
        os.unlink(instance.models)
        os.mkdir(instance.models)
        # health still sees it: the check is the same, only the periodic one is off.
        result = subprocess.run([sys.executable, "-m", "comfy_init", "health"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 65 and "is no longer a link" in result.stderr
    finally:
        assert run.stop() == 0, run.output()
    assert "WARNING" not in run.stderr()
