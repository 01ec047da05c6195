"""`comfy-init run` as a user runs it: a real process, real files, the stand-in ComfyUI."""

import json
import os
import subprocess
import sys

import pytest

from tests.support.processes import ComfyInitProcess
from tests.support.http import get_json
from tests.support.ports import free_port
from tests.support.standin import make_checkout
from tests.support.treesnap import snapshot

COMFY_INIT = [sys.executable, "-m", "comfy_init"]


def comfy_init(env, *args, timeout=30):
    return subprocess.run(COMFY_INIT + list(args), env=env, capture_output=True, text=True, timeout=timeout)


def test_dry_run_changes_nothing_and_shows_everything(base_env, tmp_path):
    data = tmp_path / "data"
    (data / "instances" / "core-1" / "input").mkdir(parents=True)  # an empty dir a link will replace
    before = snapshot(tmp_path)
    result = comfy_init(base_env, "run", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    assert snapshot(tmp_path) == before
    envelope = json.loads(result.stdout)
    assert (envelope["comfy_init_result"], envelope["command"], envelope["status"]) == (1, "run --dry-run", "ok")
    plan = envelope["data"]
    assert plan["config"]["instance_id"] == "core-1"
    actions = {(a["action"], a["path"]) for a in plan["actions"]}
    assert ("create directory", str(data / "shared" / "models" / "checkpoints")) in actions
    assert ("replace empty directory with link", str(data / "instances" / "core-1" / "input")) in actions
    assert plan["command"][2:] == ["--listen", "0.0.0.0", "--port", "8188", "--disable-auto-launch",
                                   "--base-directory", str(data / "instances" / "core-1"),
                                   "--database-url", f"sqlite:///{data}/instances/core-1/user/comfyui.db", "--cpu"]

    text = comfy_init(base_env, "run", "--dry-run", "--", "--verbose")
    assert text.returncode == 0
    assert "nothing was changed" in text.stdout
    assert text.stdout.rstrip().endswith("--cpu --verbose")
    assert snapshot(tmp_path) == before


def test_dry_run_on_a_prepared_tree_says_already_in_place(base_env, tmp_path):
    from comfy_init.boot.config import load_config
    from comfy_init.tree.apply import apply_steps
    from comfy_init.tree.planner import plan_tree

    config = load_config(base_env)
    apply_steps(plan_tree(config.layout, config.instance, multi=True))
    plan = json.loads(comfy_init(base_env, "run", "--dry-run", "--json").stdout)["data"]
    assert {a["action"] for a in plan["actions"]} == {"already in place"}


def test_help_and_usage_errors(base_env):
    assert "Usage: comfy-init run" in comfy_init(base_env, "run", "--help").stdout
    result = comfy_init(base_env, "run", "--lowvram")
    assert result.returncode == 64
    assert "pass ComfyUI's own arguments after `--`" in result.stderr
    assert comfy_init(base_env, "run", "--json").returncode == 64
    result = comfy_init(base_env, "run", "--dry-run", "--", "--port", "9000")
    assert result.returncode == 64
    assert "--port must not be given to ComfyUI directly" in result.stderr and "COMFY_PORT" in result.stderr


# (overrides, exit code, first line): configuration errors come before the instance is known.
BAD_INPUTS = [
    ({"COMFY_PORT": "http"}, 78, "comfy-init: COMFY_PORT='http': must be an integer from 1 to 65535"),
    ({"COMFY_INSTANCE_ID": "Core_1"}, 78, "comfy-init: COMFY_INSTANCE_ID='Core_1': must be a DNS label"),
    ({"COMFY_APP_DIRECTORY": "/nonexistent/comfyui"}, 66,
     "comfy-init[core-1]: COMFY_APP_DIRECTORY='/nonexistent/comfyui': no main.py there"),
]


@pytest.mark.parametrize("overrides,code,message", BAD_INPUTS)
def test_bad_input_gives_its_exit_code_one_line_and_no_change(base_env, tmp_path, overrides, code, message):
    (tmp_path / "data" / "shared" / "models").mkdir(parents=True)
    before = snapshot(tmp_path)
    env = dict(base_env, **overrides)
    for args in (["run"], ["run", "--dry-run"]):
        result = comfy_init(env, *args)
        assert result.returncode == code
        assert result.stderr.startswith(f"ERROR: {message}")
        assert "Traceback" not in result.stderr
        assert snapshot(tmp_path) == before


def test_obstacle_in_the_tree_gives_65_and_no_change(base_env, tmp_path):
    models = tmp_path / "data" / "instances" / "core-1" / "models"
    models.mkdir(parents=True)
    (models / "my.safetensors").write_bytes(b"precious")
    before = snapshot(tmp_path)
    result = comfy_init(base_env, "run")
    assert result.returncode == 65
    assert f"{models}: is a real directory that holds 1 entry (my.safetensors)" in result.stderr
    assert snapshot(tmp_path) == before


@pytest.fixture
def start(tmp_path):
    """start(env, port) -> a started `comfy-init run` on 127.0.0.1:port; killed at teardown."""
    runs = []

    def start(env, port):
        env = dict(env, COMFY_PORT=str(port), COMFY_LISTEN="127.0.0.1")
        runs.append(ComfyInitProcess(env, tmp_path, f"comfy-init-{len(runs)}").start())
        return runs[-1]

    yield start
    for run in runs:
        run.kill()


@pytest.fixture(params=["standin", "real"])
def checkout_env(request, base_env):
    """The stand-in always; a real ComfyUI checkout too when COMFYUI_PATH names one
    (with COMFYUI_PYTHON, the interpreter that has its requirements, torch included)."""
    if request.param == "standin":
        return dict(base_env, standin="1")
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        pytest.skip("COMFYUI_PATH is not set: no real ComfyUI checkout to run")
    return dict(base_env, COMFY_APP_DIRECTORY=path,
                COMFY_PYTHON=os.environ.get("COMFYUI_PYTHON", sys.executable))


def test_two_instances_on_one_tree(checkout_env, tmp_path, start):
    data = tmp_path / "data"
    standin = checkout_env.pop("standin", None) is not None
    startup = 20 if standin else 120
    env1 = dict(checkout_env, COMFY_INSTANCE_ID="core-1")
    env2 = dict(checkout_env, COMFY_INSTANCE_ID="core-2")
    port1, port2 = free_port(), free_port()
    first = start(env1, port1)
    first.wait_ready(startup)
    (data / "shared" / "models" / "checkpoints" / "shared.safetensors").write_bytes(b"w")
    first_temp = data / "instances" / "core-1" / "temp"
    (first_temp / "in-progress.png").write_bytes(b"busy")
    second = start(env2, port2)
    second.wait_ready(startup)
    for instance, port in (("core-1", port1), ("core-2", port2)):
        paths = get_json(f"http://127.0.0.1:{port}/internal/folder_paths")
        own = data / "instances" / instance
        assert paths["custom_nodes"] == [str(own / "custom_nodes")]
        if standin:  # the real ComfyUI lists model and node folders only
            for name in ("user", "temp", "output"):
                assert paths[name] == [str(own / name)]
        assert (own / "temp").is_dir()  # ComfyUI made its temp in its own folder
        assert paths["checkpoints"][0] == str(own / "models" / "checkpoints")
        if standin:
            assert paths["database"] == [str(own / "user" / "comfyui.db")]
        assert get_json(f"http://127.0.0.1:{port}/models/checkpoints") == ["shared.safetensors"]
    # The second start wiped only its own temp.
    assert (first_temp / "in-progress.png").read_bytes() == b"busy"
    assert second.stop() == 0, second.output()
    assert (first_temp / "in-progress.png").exists()
    assert first.stop() == 0, first.output()
    assert "Traceback" not in first.output()


def test_compatibility_mode_shows_the_old_tree_and_changes_nothing(tmp_path, start):
    from tests.support.standin import STANDIN_DIR

    comfy = tmp_path / "data" / "comfy"
    for name in ("models/checkpoints", "custom_nodes", "input", "output", "temp", "user/default"):
        (comfy / name).mkdir(parents=True)
    (comfy / "models" / "checkpoints" / "old.safetensors").write_bytes(b"w")
    (comfy / "output" / "ComfyUI_00001_.png").write_bytes(b"png")
    (comfy / "user" / "default" / "comfy.settings.json").write_text('{"a": 1}')
    keep = {path: value for path, value in snapshot(comfy).items() if not path.startswith(("temp", "user"))}
    env = {"COMFY_DATA_DIRECTORY": str(tmp_path / "data"), "COMFY_APP_DIRECTORY": str(STANDIN_DIR),
           "COMFY_DEVICE": "cpu", "PATH": os.environ["PATH"]}
    run = start(env, free_port())
    run.wait_ready(timeout=20)
    paths = get_json(f"{run.url}/internal/folder_paths")
    assert paths["output"] == [str(comfy / "output")]
    assert get_json(f"{run.url}/models/checkpoints") == ["old.safetensors"]
    assert run.stop() == 0, run.output()
    after = {path: value for path, value in snapshot(comfy).items() if not path.startswith(("temp", "user"))}
    # ComfyUI's own writes (its database, its temp) aside, the old tree is as it was.
    after["."] = keep["."]
    assert after == keep
    assert (comfy / "user" / "default" / "comfy.settings.json").read_text() == '{"a": 1}'
    assert not (tmp_path / "data" / "shared").exists()


def test_old_release_runs_through_links_in_its_checkout(base_env, tmp_path, start):
    checkout = make_checkout(tmp_path / "old-comfyui", base_directory=False, database_url=False)
    env = dict(base_env, COMFY_APP_DIRECTORY=str(checkout))
    run = start(env, free_port())
    run.wait_ready(timeout=20)
    paths = get_json(f"{run.url}/internal/folder_paths")
    assert paths["output"] == [str(checkout / "output")]
    assert os.path.realpath(checkout / "output") == str(tmp_path / "data" / "instances" / "core-1" / "output")
    argv = get_json(f"{run.url}/system_stats")["system"]["argv"]
    assert "--base-directory" not in argv
    assert run.stop() == 0, run.output()
