"""`comfy-init health` beside a real `comfy-init run` (stand-in ComfyUI): healthy, then unhealthy
for each broken isolation invariant and for a claim that is no longer this container's, with the
reason; healthy again once repaired. The renewal is kept out of the way (a lease of an hour) so
that the registry says what the test wrote."""

import json
import os
import subprocess
import sys

import pytest

from comfy_init.layout import Layout
from comfy_init.store.registry import Registry
from tests.support.ports import free_port
from tests.support.processes import ComfyInitProcess, instance_env
from tests.support.standin import STANDIN_DIR


@pytest.fixture
def running(tmp_path):
    data = tmp_path / "data"
    env = instance_env(instance_id="h-1", data=data, app=STANDIN_DIR, port=free_port(), COMFY_CLAIM_LEASE=3600)
    run = ComfyInitProcess(env, tmp_path).start()
    try:
        run.wait_ready()
        (data / "instances" / "other" / "temp").mkdir(parents=True)
        yield run, Layout(str(data)), Layout(str(data)).instance("h-1")
    finally:
        assert run.stop() == 0, run.output()


def health(run, *args):
    result = subprocess.run([sys.executable, "-m", "comfy_init", "health", *args], env=run.env,
                            capture_output=True, text=True, timeout=60)
    envelope = json.loads(result.stdout) if "--json" in args else None
    return result, envelope


def kinds(run):
    result, envelope = health(run, "--json")
    assert result.returncode == envelope["exit_code"]
    return result.returncode, [(p["kind"], p["path"]) for p in envelope["problems"]], envelope


def test_healthy_beside_a_running_instance(running):
    run, _, _ = running
    result, _ = health(run)
    assert result.returncode == 0 and result.stdout.startswith("healthy: "), result.stderr
    code, found, envelope = kinds(run)
    assert (code, found) == (0, [])
    assert (envelope["data"]["claim"], envelope["data"]["isolation"], envelope["data"]["healthy"]) == ("ok", "ok", True)


def swap_for_link(path, target):
    moved = path + ".kept"
    os.rename(path, moved)
    os.symlink(target, path)
    return lambda: (os.unlink(path), os.rename(moved, path))


@pytest.mark.parametrize("name, target", [("temp", "../other/temp"), ("output", "../../shared/input"),
                                          ("user", "../other/temp")])
def test_a_folder_resolving_elsewhere_fails_with_the_path_then_heals(running, name, target):
    run, _, instance = running
    undo = swap_for_link(instance.folder(name), target)
    code, found, envelope = kinds(run)
    assert code == 65 and ("shared-folder", instance.folder(name)) in found
    assert envelope["data"]["isolation"] == "broken" and envelope["data"]["claim"] == "ok"
    result, _ = health(run)
    assert result.returncode == 65 and f"ERROR: comfy-init: {instance.folder(name)}: resolves to" in result.stderr
    undo()
    assert kinds(run)[:2] == (0, [])


def test_the_database_linked_into_another_instance_fails(running):
    run, layout, instance = running
    other_db = os.path.join(layout.instances, "other", "temp", "comfyui.db")
    open(other_db, "w").close()
    if os.path.lexists(instance.database):
        os.rename(instance.database, instance.database + ".kept")
    os.symlink(other_db, instance.database)
    assert kinds(run)[:2] == (65, [("shared-folder", instance.database)])


def test_the_models_link_pointing_elsewhere_fails(running):
    run, layout, instance = running
    os.unlink(instance.models)
    os.symlink("../other/temp", instance.models)
    code, found, envelope = kinds(run)
    assert (code, found) == (65, [("wrong-link", instance.models)])
    assert layout.shared_models in envelope["problems"][0]["message"]
    os.unlink(instance.models)
    os.mkdir(instance.models)
    assert kinds(run)[:2] == (65, [("link-expected", instance.models)])


def test_a_claim_taken_by_another_host_fails_with_75(running):
    run, layout, _ = running
    with Registry(layout).transaction() as document:
        document["claims"]["h-1"].update(host="far-node", boot_id="another-boot", pid=7)
    code, found, envelope = kinds(run)
    assert (code, found) == (75, [("claim-lost", None)])
    assert "now held by far-node, pid 7" in envelope["problems"][0]["message"]
    assert envelope["data"]["claim"] == "lost" and envelope["data"]["detail"].endswith("answered")


def test_a_claim_that_is_gone_fails_with_75(running):
    run, layout, _ = running
    with Registry(layout).transaction() as document:
        del document["claims"]["h-1"]
    code, found, envelope = kinds(run)
    assert (code, found) == (75, [("claim-lost", layout.registry)])
    assert "no claim in the registry" in envelope["problems"][0]["message"]


def test_a_claim_naming_another_pid_of_this_host_fails(running):
    run, layout, _ = running
    with Registry(layout).transaction() as document:
        document["claims"]["h-1"]["pid"] = run.pid + 100000
    code, found, envelope = kinds(run)
    assert (code, found) == (75, [("claim-lost", layout.lock_path("h-1"))])
    assert f"held by pid {run.pid}" in envelope["problems"][0]["message"]


def test_every_finding_is_reported_at_once(running):
    run, layout, instance = running
    os.unlink(instance.models)
    os.symlink("../other/temp", instance.models)
    with Registry(layout).transaction() as document:
        del document["claims"]["h-1"]
    code, found, _ = kinds(run)
    # A setting's kind decides first: the data problem (65) wins over the claim (75).
    assert code == 65 and sorted(k for k, _ in found) == ["claim-lost", "wrong-link"]


HEAVY = {"click", "psutil", "jsonschema", "urllib.request", "http.client", "ssl", "email", "importlib.resources",
         "concurrent.futures", "dataclasses", "inspect", "encodings.idna"}


def test_health_imports_nothing_heavy(running, tmp_path):
    """Every check ran (healthy beside a running instance), and none of what costs start-up time
    was imported: click (the fast path), urllib and its email/ssl, psutil, jsonschema."""
    from tests.test_architecture import modules_loaded_by

    run, _, _ = running
    for args in (["health"], ["health", "--json", "--timeout", "2"]):
        loaded, result = modules_loaded_by(tmp_path, run.env, *args)
        assert "healthy" in result.stdout
        assert HEAVY & loaded == set(), args
        assert {"comfy_init.tree.invariants", "comfy_init.store.registry"} <= loaded


def test_health_help_and_bad_options_still_go_through_click(running):
    run, _, _ = running
    result, _ = health(run, "--help")
    assert result.returncode == 0 and "HEALTHCHECK" in result.stdout
    result, envelope = health(run, "--timeout", "soon", "--json")
    assert result.returncode == 2 and envelope["problems"][0]["kind"] == "bad-option"
