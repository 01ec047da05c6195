"""`comfy-init run` on the stand-in behaving as ComfyUI 0.3.12, 0.3.64 and 0.38: the command line
each gets (dry run and a real start), and the message for each failure a release has."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.support.http import get_json
from tests.support.ports import free_port
from tests.support.processes import ComfyInitProcess, instance_env
from tests.support.standin import make_checkout

COMFY_INIT = [sys.executable, "-m", "comfy_init", "run"]


@pytest.fixture
def tree(tmp_path):
    """tree(release) -> (data dir, checkout dir) with the stand-in copied as that release."""
    def make(release):
        return tmp_path / "data", make_checkout(tmp_path / f"comfyui-{release}", release=release)
    return make


@pytest.fixture
def start(tmp_path):
    runs = []

    def start(env, name=None):
        runs.append(ComfyInitProcess(env, tmp_path, name or f"run-{len(runs)}").start())
        return runs[-1]

    yield start
    for run in runs:
        run.kill()


def env_for(data, app, instance_id="core-1", **extra):
    return instance_env(instance_id=instance_id, data=data, app=app, port=free_port(), **extra)


def dry_run(env):
    result = subprocess.run(COMFY_INIT + ["--dry-run", "--json"], env=env, capture_output=True,
                            text=True, timeout=30)
    return result.returncode, json.loads(result.stdout)


def flags_after_port(command):
    return command[command.index("--disable-auto-launch") + 1:]


# -- the command line each release gets -----------------------------------------------------------

def test_command_line_of_each_release(tree):
    expected = {}
    for release in ("0.3.12", "0.3.64", "0.38"):
        data, app = tree(release)
        own = data / "instances" / "core-1"
        code, envelope = dry_run(env_for(data, app, COMFY_ASSETS="off"))
        assert code == 0, envelope
        expected[release] = flags_after_port(envelope["data"]["command"])
        checkout = envelope["data"]["checkout"]
        assert checkout["version"].startswith(release)
        assert checkout["enable_manager"] is (release == "0.38")
        assert checkout["models_directory"] is (release == "0.38")
    db = f"sqlite:///{own}/user/comfyui.db"
    assert expected["0.3.12"] == ["--cpu"]  # links inside the checkout instead, no database flag
    assert expected["0.3.64"] == ["--base-directory", str(own), "--database-url", db, "--cpu"]
    # COMFY_ASSETS=off means something only where the release has a scan to turn off.
    assert expected["0.38"] == ["--base-directory", str(own), "--database-url", db, "--cpu", "--disable-assets"]


@pytest.mark.parametrize("release", ["0.3.12", "0.3.64", "0.38"])
def test_a_real_start_runs_that_command(tree, start, release):
    data, app = tree(release)
    legacy = app / "user" / "comfyui.db"
    legacy.parent.mkdir()
    legacy.write_bytes(b"")  # an old checkout database: 0.38 would move it without --database-url
    env = env_for(data, app)
    code, envelope = dry_run(env)
    assert code == 0
    run = start(env)
    stats = run.wait_ready(20)
    assert stats["system"]["argv"] == envelope["data"]["command"][1:]
    assert stats["system"]["comfyui_version"].startswith(release)
    own = data / "instances" / "core-1"
    database = get_json(run.url + "/internal/folder_paths")["database"][0]
    if release == "0.3.12":
        assert database == str(legacy)  # the only database such a release knows
    else:
        assert database == str(own / "user" / "comfyui.db")
        assert (own / "user" / "comfyui.db").exists()
    assert legacy.exists() and not (app / "user" / "comfyui.db.bak").exists()
    assert run.stop() == 0, run.output()


def test_the_standin_as_038_moves_the_checkout_database_without_a_url(tree, tmp_path):
    # What comfy-init prevents by always passing --database-url: the emulation is faithful.
    _data, app = tree("0.38")
    (app / "user").mkdir()
    (app / "user" / "comfyui.db").write_bytes(b"")
    base = tmp_path / "base"
    (base / "custom_nodes").mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, str(app / "main.py"), "--base-directory", str(base),
                             "--port", str(free_port())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not (base / "user" / "comfyui.db").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert (app / "user" / "comfyui.db.bak").exists() and not (app / "user" / "comfyui.db").exists()
    assert (base / "user" / "comfyui.db").exists()


# -- the database lock of 0.38 --------------------------------------------------------------------

def test_a_second_instance_on_one_database_gets_one_line_and_no_restart(tree, start, tmp_path):
    data, app = tree("0.38")
    shared_db = tmp_path / "elsewhere" / "shared.db"  # outside the tree: the user's business
    cli_args = f"--database-url sqlite:///{shared_db}"
    first = start(env_for(data, app, "core-1", CLI_ARGS=cli_args), "first")
    first.wait_ready(20)
    log = tmp_path / "second.events"
    second = start(env_for(data, app, "core-2", CLI_ARGS=cli_args, STANDIN_LOG_FILE=log), "second")
    began = time.monotonic()
    code = second.wait(30)
    took = time.monotonic() - began
    assert code == 75, second.output()
    assert 5 <= took < 20  # ComfyUI waited its 5 s for the lock, then comfy-init stopped
    errors = [line for line in second.stderr().splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, second.output()
    line = errors[0]
    assert "core-2" in line and str(shared_db) in line and "ASSETS_STARTUP_FAILED: in_use" in line
    assert "remove --database-url from CLI_ARGS" in line
    assert "ASSETS_STARTUP_FAILED: in_use" in second.output()  # ComfyUI's own lines still pass through
    assert len(second.events("started")) == 1  # started once: no restart loop
    assert get_json(first.url + "/system_stats")  # the first one is untouched
    assert first.stop() == 0


def test_an_exit_without_the_marker_keeps_comfyuis_code(tree, start, tmp_path):
    # The stand-in's older releases exit 1 at once on a held database ("database is locked").
    # (A real 0.3.64, run by hand, started both: it takes no lock.) Either way there is no
    # ASSETS_STARTUP_FAILED line, so ComfyUI's own code stands and comfy-init adds no error.
    data, app = tree("0.3.64")
    cli_args = f"--database-url sqlite:///{tmp_path / 'elsewhere.db'}"
    first = start(env_for(data, app, "core-1", CLI_ARGS=cli_args), "first")
    first.wait_ready(20)
    second = start(env_for(data, app, "core-2", CLI_ARGS=cli_args), "second")
    assert second.wait(20) == 1
    assert "database is locked" in second.output()
    assert not [line for line in second.stderr().splitlines() if line.startswith("ERROR")]
    assert first.stop() == 0


@pytest.mark.parametrize("kind, code", [("corrupt", 65), ("not_writable", 77), ("newer_revision", 65)])
def test_other_database_failures_get_their_own_code(tree, start, kind, code):
    data, app = tree("0.38")
    run = start(env_for(data, app, STANDIN_ASSETS_FAILURE=kind))
    assert run.wait(20) == code, run.output()
    line = [line for line in run.stderr().splitlines() if line.startswith("ERROR")]
    assert len(line) == 1 and f"ASSETS_STARTUP_FAILED: {kind}" in line[0] and "core-1" in line[0]


def test_a_corrupt_database_file_is_reported(tree, start):
    data, app = tree("0.38")
    user = data / "instances" / "core-1" / "user"
    user.mkdir(parents=True)
    (user / "comfyui.db").write_bytes(b"this is not sqlite" * 100)
    run = start(env_for(data, app))
    assert run.wait(20) == 65, run.output()
    assert "is corrupt" in run.stderr() and str(user / "comfyui.db") in run.stderr()
    assert (user / "comfyui.db").read_bytes().startswith(b"this is not sqlite")  # nothing lost


def test_disable_assets_leaves_the_database_alone(tree, start):
    data, app = tree("0.38")
    run = start(env_for(data, app, COMFY_ASSETS="off"))
    run.wait_ready(20)
    assert not (data / "instances" / "core-1" / "user" / "comfyui.db").exists()
    assert run.stop() == 0


# -- --cuda-device forms --------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0,1", "all"])
def test_a_gpu_list_is_refused_by_an_old_release(tree, start, value):
    data, app = tree("0.3.64")
    env = env_for(data, app, COMFY_DEVICE="cuda", COMFY_CUDA_DEVICE=value)
    code, envelope = dry_run(env)
    assert code == 78
    problem, = envelope["problems"]
    assert problem["kind"] == "release-lacks-feature"
    assert f"COMFY_CUDA_DEVICE={value!r}" in problem["message"] and "0.3.64" in problem["message"]
    run = start(env)
    assert run.wait(20) == 78
    assert "started ComfyUI" not in run.stderr()
    assert not (data / "instances").exists()  # refused before anything was written


@pytest.mark.parametrize("value, visible", [("0,1", 2), ("all", 1), ("1", 1)])
def test_a_gpu_list_is_passed_to_0_38(tree, start, value, visible):
    data, app = tree("0.38")
    env = env_for(data, app, COMFY_DEVICE="cuda", COMFY_CUDA_DEVICE=value)
    run = start(env)
    stats = run.wait_ready(20)
    argv = stats["system"]["argv"]
    assert argv[argv.index("--cuda-device") + 1] == value
    assert len(stats["devices"]) == visible
    assert run.stop() == 0


def test_bad_forms_of_cuda_device_are_refused_at_once(tree):
    data, app = tree("0.38")
    for value in ("0,0", "1,x", "-1", "2000", ","):
        code, envelope = dry_run(env_for(data, app, COMFY_DEVICE="cuda", COMFY_CUDA_DEVICE=value))
        assert code == 78, value
        assert envelope["problems"][0]["message"].startswith(f"COMFY_CUDA_DEVICE={value!r}")


# -- containment: the whole-folder input link under 0.38's realpath checks -------------------------

def fetch(url, data=None):
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.mark.parametrize("release", ["0.3.64", "0.38"])
def test_uploads_and_load_image_work_through_the_input_link(tree, start, tmp_path, release):
    data, app = tree(release)
    run = start(env_for(data, app))
    run.wait_ready(20)
    shared_input = data / "shared" / "input"
    own = data / "instances" / "core-1"
    assert os.readlink(own / "input") == "../../shared/input"
    # An upload lands in shared/input through the link, and LoadImage reads it back.
    status, answer = fetch(run.url + "/upload/image?name=cat.png", b"png-bytes")
    assert status == 200, answer
    assert (shared_input / "cat.png").read_bytes() == b"png-bytes"
    assert fetch(run.url + "/standin/load_image?name=cat.png") == (
        200, {"path": str(own / "input" / "cat.png"), "size": 9})
    # A subfolder too; and outputs and user files, which are real folders of the instance.
    assert fetch(run.url + "/upload/image?name=dog.png&subfolder=pets", b"d")[0] == 200
    assert fetch(run.url + "/standin/load_image?name=pets/dog.png")[0] == 200
    (own / "output" / "out.png").write_bytes(b"o")
    assert fetch(run.url + "/standin/load_image?name=out.png%20[output]")[0] == 200
    (own / "user" / "default").mkdir(parents=True, exist_ok=True)
    (own / "user" / "default" / "w.json").write_text("{}")
    assert fetch(run.url + "/standin/userdata?file=w.json")[0] == 200
    # A link INSIDE shared/input that leads out of it: refused from 0.38 on, read before.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"s")
    (shared_input / "escape.png").symlink_to(outside / "secret.png")
    status, answer = fetch(run.url + "/standin/load_image?name=escape.png")
    assert status == (400 if release == "0.38" else 200), answer
    assert run.stop() == 0


# -- directories ComfyUI wants to exist -----------------------------------------------------------

def test_a_missing_user_or_models_directory_is_named(tree, tmp_path):
    data, app = tree("0.38")
    missing = tmp_path / "no-such-models"
    code, envelope = dry_run(env_for(data, app, CLI_ARGS=f"--models-directory {missing}"))
    assert code == 66
    problem, = envelope["problems"]
    assert problem["kind"] == "missing-path" and str(missing) in problem["message"]
    missing.mkdir()
    assert dry_run(env_for(data, app, CLI_ARGS=f"--models-directory {missing}"))[0] == 0


def test_the_instances_own_user_directory_may_be_made_by_the_start(tree, start):
    data, app = tree("0.38")
    own_user = data / "instances" / "core-1" / "user"
    env = env_for(data, app, CLI_ARGS=f"--user-directory {own_user}")
    assert dry_run(env)[0] == 0  # comfy-init makes it before ComfyUI starts
    run = start(env)
    run.wait_ready(20)
    assert run.stop() == 0
