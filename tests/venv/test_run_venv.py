"""`comfy-init run` with instance environments: real venvs, real pip, wheels built here, no network.

The "ComfyUI" here is a checkout whose main.py reports which interpreter runs it and what it
imports, and installs what FAKE_INSTALL names with `sys.executable -m pip install`, as
ComfyUI-Manager and custom nodes do.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.processes import instance_env, spawn
from tests.venv.conftest import STANDIN, imported, offline, write_build_file

FAKE_MAIN = r'''
import json, os, subprocess, sys
report = {"executable": sys.executable, "prefix": sys.prefix, "argv": sys.argv,
          "pip_constraint": os.environ.get("PIP_CONSTRAINT"), "uv_constraint": os.environ.get("UV_CONSTRAINT")}
if os.environ.get("FAKE_INSTALL"):
    done = subprocess.run([sys.executable, "-m", "pip", "install", *os.environ["FAKE_INSTALL"].split()],
                          capture_output=True, text=True)
    report["install"] = {"returncode": done.returncode, "output": done.stdout + done.stderr}
found = subprocess.run([sys.executable, "-c", "import foo; print(foo.VERSION)"], capture_output=True, text=True)
report["foo"] = found.stdout.strip()
with open(os.environ["FAKE_REPORT"], "w") as out:
    json.dump(report, out)
'''


@pytest.fixture
def app(tmp_path):
    checkout = tmp_path / "comfyui"
    shutil.copytree(STANDIN, checkout)
    (checkout / "main.py").write_text(FAKE_MAIN)
    return checkout


@pytest.fixture
def start(tmp_path, app, image, wheelhouse):
    """start(instance_id, **env) -> (CompletedProcess, report of the fake ComfyUI or None)."""
    def run(instance_id, *args, **extra):
        report = tmp_path / f"report-{instance_id}.json"
        report.unlink(missing_ok=True)
        extra = dict({"COMFY_PYTHON": image}, **extra)
        env = instance_env(instance_id=instance_id, data=tmp_path / "data", app=app, port=free_port(),
                           FAKE_REPORT=report, **extra)
        env = dict(offline(wheelhouse), **{k: v for k, v in env.items() if not k.startswith("PIP_")})
        done = subprocess.run([sys.executable, "-m", "comfy_init", "run", *args], env=env, capture_output=True,
                              text=True, timeout=180)
        return done, (json.loads(report.read_text()) if report.exists() else None)
    return run


def venv_of(tmp_path, instance_id):
    return tmp_path / "data" / "instances" / instance_id / "venv"


def test_comfyui_runs_in_the_instance_environment_and_installs_land_there(tmp_path, start, image):
    done, report = start("a", FAKE_INSTALL="foo==2.0")
    assert done.returncode == 0, done.stderr
    venv = venv_of(tmp_path, "a")
    assert report["executable"] == str(venv / "bin" / "python") and report["prefix"] == str(venv)
    assert report["install"]["returncode"] == 0, report["install"]["output"]
    assert report["foo"] == "2.0"
    assert imported(venv / "bin" / "python", "foo")[1].startswith(str(venv))
    assert imported(image, "foo")[0] == "1.0"  # the image's own package is untouched
    assert str(venv / "comfy-init-constraints.txt") in report["pip_constraint"].split()
    assert str(venv / "comfy-init-constraints.txt") in report["uv_constraint"].split()
    assert "creating the environment" in done.stderr


def test_two_instances_keep_conflicting_versions_of_one_package(tmp_path, start, image):
    assert start("a", FAKE_INSTALL="foo==2.0")[0].returncode == 0
    assert start("b", FAKE_INSTALL="foo==3.0")[0].returncode == 0
    for instance_id, version in (("a", "2.0"), ("b", "3.0")):
        done, report = start(instance_id)  # a second start: the environment is used as it is
        assert done.returncode == 0, done.stderr
        assert report["foo"] == version
        assert "creating" not in done.stderr and "rebuilding" not in done.stderr
        assert imported(venv_of(tmp_path, instance_id) / "bin" / "python", "foo")[0] == version
    assert imported(image, "foo")[0] == "1.0"


def test_an_install_that_would_replace_torch_is_refused(tmp_path, start, image, wheelhouse):
    done, report = start("a", FAKE_INSTALL="torch==9.0")
    assert done.returncode == 0, done.stderr
    assert report["install"]["returncode"] != 0
    assert "The user requested (constraint) torch==1.0" in report["install"]["output"]
    python = venv_of(tmp_path, "a") / "bin" / "python"
    assert imported(python, "torch")[0] == "1.0"
    # Without PIP_CONSTRAINT (a shell in the container, a node's own pip call with a cleaned
    # environment) the environment's pip.conf still applies them; a package that needs another
    # torch is refused the same way; an upgrade keeps the constrained version.
    env = {k: v for k, v in offline(wheelhouse).items() if k != "PIP_CONSTRAINT"}
    upgrade = subprocess.run([str(python), "-m", "pip", "install", "-U", "torch"], capture_output=True, text=True, env=env)
    assert upgrade.returncode == 0 and "already satisfied: torch" in upgrade.stdout
    for request in (["torch==9.0"], ["needs-new-torch"]):
        again = subprocess.run([str(python), "-m", "pip", "install", *request], capture_output=True, text=True, env=env)
        assert again.returncode != 0, (request, again.stdout)
        assert "(constraint) torch==1.0" in again.stdout + again.stderr, request
    assert imported(python, "torch")[0] == "1.0"


def add_node(tmp_path, instance_id, name, requirements):
    node = tmp_path / "data" / "instances" / instance_id / "custom_nodes" / name
    node.mkdir(parents=True, exist_ok=True)
    (node / "requirements.txt").write_text(requirements)


def tag_of(venv):
    return json.loads((venv / "comfy-init-venv.json").read_text())["build"]


def moved(tmp_path, instance_id):
    return sorted((tmp_path / "data" / "instances" / instance_id).glob("venv.moved-*"))


def temporaries(tmp_path, instance_id):
    return sorted((tmp_path / "data" / "instances" / instance_id).glob(".venv.building-*"))


def test_a_different_image_moves_the_environment_aside_and_rebuilds_it(tmp_path, start, image):
    add_node(tmp_path, "a", "node-1", "bar==1.0\n")
    first, report = start("a", FAKE_INSTALL="foo==2.0")  # bar from the node's requirements, foo by "the Manager"
    assert first.returncode == 0, first.stderr
    venv = venv_of(tmp_path, "a")
    assert imported(venv / "bin" / "python", "bar")[1].startswith(str(venv))
    # A complete temporary beside a venv/ in place is stale (no swap pending): the rebuild drops it.
    shutil.copytree(venv, venv.parent / ".venv.building-5ta1e000", symlinks=True)
    write_build_file(image, comfyui="0.4.0", torch="1.0")
    done, report = start("a")
    assert done.returncode == 0, done.stderr
    log = done.stderr
    assert "rebuilding the environment (made for another image: comfyui 0.3.64-standin -> 0.4.0)" in log
    assert log.index("moved the old environment to") < log.index("environment ready") < log.index("started ComfyUI")
    assert "pip: Successfully installed" in log  # pip's progress is in the log
    [old] = moved(tmp_path, "a")
    assert tag_of(old)["comfyui"] == "0.3.64-standin" and tag_of(venv)["comfyui"] == "0.4.0"
    assert imported(old / "bin" / "python", "foo")[0] == "2.0"  # kept whole, never deleted
    for module, version in (("foo", "2.0"), ("bar", "1.0")):
        found_version, where = imported(venv / "bin" / "python", module)
        assert found_version == version and where.startswith(str(venv)), module
    assert report["foo"] == "2.0"
    assert temporaries(tmp_path, "a") == []
    again, _ = start("a")
    assert "rebuilding" not in again.stderr and len(moved(tmp_path, "a")) == 1


def test_the_dry_run_says_what_a_start_would_do_and_changes_nothing(tmp_path, start, image):
    done, _ = start("a", "--dry-run")
    assert done.returncode == 0 and "create the environment" in done.stdout
    assert not venv_of(tmp_path, "a").exists()
    assert start("a")[0].returncode == 0
    done, _ = start("a", "--dry-run", "--json")
    venv = json.loads(done.stdout)["data"]["venv"]
    assert venv["state"] == "ready" and venv["python"] == str(venv_of(tmp_path, "a") / "bin" / "python")
    assert json.loads(done.stdout)["data"]["command"][0] == venv["python"]
    write_build_file(image, python_abi="cpython-312-x86_64-linux-gnu")
    done, _ = start("a", "--dry-run")
    assert "move the environment" in done.stdout and "python_abi cpython-311" in done.stdout
    assert moved(tmp_path, "a") == [] and tag_of(venv_of(tmp_path, "a"))["python_abi"].startswith("cpython-311")


def test_off_runs_comfyui_in_the_image_interpreter_and_auto_follows_the_build_file(tmp_path, start, image):
    done, report = start("a", COMFY_VENV="off")
    assert done.returncode == 0 and report["executable"] == str(image)
    assert not venv_of(tmp_path, "a").exists()
    # auto: on with an image build file beside COMFY_PYTHON, off without (host interpreters).
    done, _ = start("b", "--dry-run", COMFY_PYTHON=sys.executable)
    assert "environment:\n  off: ComfyUI runs in" in done.stdout
    # Compatibility mode leaves the old single-instance tree as it was, unless asked.
    done, _ = start("b", "--dry-run", COMFY_MULTI_INSTANCE="false")
    assert done.returncode == 0 and "environment:\n  off: ComfyUI runs in" in done.stdout, done.stderr
    done, _ = start("b", "--dry-run", COMFY_MULTI_INSTANCE="false", COMFY_VENV="on")
    assert "create the environment " + str(tmp_path / "data" / "comfy" / "venv") in done.stdout
    done, _ = start("b", "--dry-run", COMFY_VENV="maybe")
    assert done.returncode == 78 and "COMFY_VENV='maybe': must be one of auto, on, off" in done.stderr


def test_a_failed_rebuild_keeps_the_old_environment_and_comfyui_is_not_started(tmp_path, start, image):
    assert start("a", FAKE_INSTALL="foo==2.0")[0].returncode == 0
    add_node(tmp_path, "a", "node-1", "bar==7.0\n")  # not in the wheelhouse: cannot be installed
    write_build_file(image, comfyui="0.4.0")
    done, report = start("a")
    assert done.returncode == 73 and report is None
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "cannot make the Python environment for ComfyUI 0.4.0" in errors[0]
    assert "is unchanged" in errors[0] and "COMFY_VENV=off" in errors[0]
    venv = venv_of(tmp_path, "a")
    assert tag_of(venv)["comfyui"] == "0.3.64-standin" and imported(venv / "bin" / "python", "foo")[0] == "2.0"
    assert moved(tmp_path, "a") == [] and temporaries(tmp_path, "a") == []
    registry = json.loads((tmp_path / "data" / "meta" / "instance-registry.json").read_text())
    assert registry["claims"] == {}  # the claim was released


def test_a_first_environment_that_cannot_be_made_leaves_nothing(tmp_path, start):
    add_node(tmp_path, "a", "node-1", "bar==7.0\n")
    done, report = start("a")
    assert done.returncode == 73 and report is None and "nothing was left at" in done.stderr
    assert not venv_of(tmp_path, "a").exists() and temporaries(tmp_path, "a") == []


def test_a_start_between_the_two_renames_finishes_the_swap(tmp_path, start, image):
    assert start("a", FAKE_INSTALL="foo==2.0")[0].returncode == 0
    write_build_file(image, comfyui="0.4.0")
    assert start("a")[0].returncode == 0
    venv = venv_of(tmp_path, "a")
    # The state a kill between "old aside" and "new into place" leaves: no venv/, a complete temporary.
    venv.rename(venv.parent / ".venv.building-0123abcd")
    done, report = start("a")
    assert done.returncode == 0, done.stderr
    assert "finished an interrupted rebuild" in done.stderr and report["foo"] == "2.0"
    assert report["executable"] == str(venv / "bin" / "python") and tag_of(venv)["comfyui"] == "0.4.0"


def test_an_interrupted_rebuild_for_another_image_is_finished_then_rebuilt(tmp_path, start, image):
    assert start("a", FAKE_INSTALL="foo==2.0")[0].returncode == 0
    venv = venv_of(tmp_path, "a")
    venv.rename(venv.parent / ".venv.building-0123abcd")
    write_build_file(image, comfyui="0.5.0")
    done, report = start("a")
    assert done.returncode == 0, done.stderr
    assert done.stderr.index("finished an interrupted rebuild") < done.stderr.index("rebuilding the environment")
    assert tag_of(venv)["comfyui"] == "0.5.0" and report["foo"] == "2.0"
    assert [tag_of(old)["comfyui"] for old in moved(tmp_path, "a")] == ["0.3.64-standin"]


def test_a_rebuild_killed_at_any_instant_leaves_a_usable_environment(tmp_path, app, image, wheelhouse, start):
    add_node(tmp_path, "a", "node-1", "bar==1.0\n")
    assert start("a", FAKE_INSTALL="foo==2.0")[0].returncode == 0
    venv, instance = venv_of(tmp_path, "a"), tmp_path / "data" / "instances" / "a"
    write_build_file(image, comfyui="0.4.0")
    env = dict(offline(wheelhouse), **{k: v for k, v in instance_env(
        instance_id="a", data=tmp_path / "data", app=app, port=free_port(), COMFY_PYTHON=image,
        FAKE_REPORT=tmp_path / "r.json").items() if not k.startswith("PIP_")})
    for delay in (0.0, 0.05, 0.15, 0.3, 0.5, 0.8, 1.2, 2.0, 3.0):
        log = tmp_path / f"kill-{delay}.log"
        with open(log, "w") as err:
            child = spawn([sys.executable, "-m", "comfy_init", "run"], env=env, stderr=err,
                          stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while "rebuilding" not in log.read_text() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        os.killpg(child.pid, signal.SIGKILL)  # comfy-init, and pip or venv below it
        child.wait()
        # Either venv/ is a complete environment (the old or the new one), or a complete temporary
        # waits for the next start to rename it into place.
        if venv.exists():
            assert tag_of(venv)["comfyui"] in ("0.3.64-standin", "0.4.0")
            assert imported(venv / "bin" / "python", "foo")[0] == "2.0"
        else:
            assert any((t / "comfy-init-venv.json").exists() for t in temporaries(tmp_path, "a")), delay
        if venv.exists() and tag_of(venv)["comfyui"] == "0.4.0":
            break
    done, report = start("a")
    assert done.returncode == 0, done.stderr
    assert tag_of(venv)["comfyui"] == "0.4.0" and report["foo"] == "2.0"
    assert imported(venv / "bin" / "python", "bar")[1].startswith(str(venv))
    assert temporaries(tmp_path, "a") == []
    assert all(tag_of(old)["comfyui"] == "0.3.64-standin" for old in instance.glob("venv.moved-*"))


# The test extra installs uv beside the interpreter running the tests, which may not be on PATH.
UV = shutil.which("uv") or shutil.which("uv", path=os.path.dirname(sys.executable)) or os.environ.get("COMFY_INIT_TEST_UV")


@pytest.mark.skipif(not UV, reason="uv is not installed (set COMFY_INIT_TEST_UV=/path/to/uv)")
def test_uv_installs_into_the_instance_and_refuses_another_torch(tmp_path, start, wheelhouse):
    done, report = start("a")
    assert done.returncode == 0, done.stderr
    python = venv_of(tmp_path, "a") / "bin" / "python"
    # What ComfyUI's environment carries: uv reads no pip.conf, so UV_CONSTRAINT does it.
    env = dict(offline(wheelhouse), UV_CONSTRAINT=report["uv_constraint"])
    uv = [UV, "pip", "install", "--python", str(python), "--no-index", "--find-links", str(wheelhouse)]
    installed = subprocess.run([*uv, "foo==3.0"], capture_output=True, text=True, env=env)
    assert installed.returncode == 0, installed.stderr
    assert imported(python, "foo") == ("3.0", str(venv_of(tmp_path, "a") / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" / "foo" / "__init__.py"))
    refused = subprocess.run([*uv, "torch==9.0"], capture_output=True, text=True, env=env)
    assert refused.returncode != 0 and "torch==1.0" in refused.stderr
    assert imported(python, "torch")[0] == "1.0"


def test_the_claim_is_renewed_while_the_environment_is_rebuilt(tmp_path, start, image, app, wheelhouse):
    """A rebuild runs pip and may outlast the lease: the claim must be renewed meanwhile, or a host
    on a share would take over an instance that is about to start."""
    from comfy_init.layout import Layout
    from comfy_init.store import claimfiles

    assert start("a")[0].returncode == 0
    write_build_file(image, comfyui="0.4.0")
    # Every interpreter of the "image" (and so of the environment: its .pth adds the image's
    # site-packages) sleeps at start when asked: venv creation and pip take seconds, as real ones do.
    site_packages = Path(subprocess.run([str(image), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        capture_output=True, text=True, check=True).stdout.strip())
    sleeper = site_packages / "zz_slow_start.pth"
    sleeper.write_text("import os, time; time.sleep(float(os.environ.get('SLOW_START_S') or 0))\n")
    env = instance_env(instance_id="a", data=tmp_path / "data", app=app, port=free_port(), COMFY_PYTHON=image,
                       COMFY_CLAIM_LEASE="1", SLOW_START_S="1.5", FAKE_REPORT=tmp_path / "report-slow.json")
    env = dict(offline(wheelhouse), **{k: v for k, v in env.items() if not k.startswith("PIP_")})
    layout = Layout(str(tmp_path / "data"))
    heartbeats_while_building = []
    log = tmp_path / "slow-start.log"
    try:
        with open(log, "w") as stderr:
            run = subprocess.Popen([sys.executable, "-m", "comfy_init", "run"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
        deadline = time.monotonic() + 120
        while run.poll() is None and time.monotonic() < deadline:
            if temporaries(tmp_path, "a"):
                newest = claimfiles.newest(layout, "a")
                if newest is not None:
                    heartbeats_while_building.append(newest[1]["heartbeat"])
            time.sleep(0.1)
        assert run.wait(timeout=5) == 0, log.read_text()
    finally:
        sleeper.unlink()
    assert "rebuilding the environment" in log.read_text()
    assert heartbeats_while_building and max(heartbeats_while_building) >= 2, heartbeats_while_building
