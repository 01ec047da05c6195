import os

import pytest

import sys

from comfy_init.boot.config import load_config
from comfy_init.comfyui.checkout import probe_checkout
from comfy_init.comfyui.command import build_command as build_argv
from comfy_init.comfyui.gpu import detect_gpu
from comfy_init.comfyui.gpu import resolve_device as resolve_device_setting
from comfy_init.tree.checkout_links import plan_checkout_links as plan_links
from comfy_init.errors import MissingPathError
from comfy_init.tree.apply import apply_steps
from comfy_init.tree.steps import LINK, MOVE_ASIDE
from tests.support.standin import make_checkout


@pytest.fixture
def new_checkout(tmp_path):
    return probe_checkout(str(make_checkout(tmp_path / "new")))


@pytest.fixture
def old_checkout(tmp_path):
    return probe_checkout(str(make_checkout(tmp_path / "old", base_directory=False, database_url=False)))


PYTHON = sys.executable


def config_for(**env):
    base = {"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "core-1", "COMFY_DATA_DIRECTORY": "/data",
            "COMFY_PYTHON": PYTHON}
    base.update(env)
    return load_config(base)


def build_command(config, checkout, device, extra=()):
    return build_argv(python=config.python, checkout=checkout, instance=config.instance, listen=config.listen,
                      port=config.port, device=device, cuda_device=config.cuda_device,
                      arguments=list(config.cli_args) + list(extra))


def resolve_device(config, environ, root):
    return resolve_device_setting(config.device, environ, root)


def plan_checkout_links(config, checkout):
    return plan_links(checkout, config.instance)


def test_probe_finds_the_flags(new_checkout, old_checkout):
    assert (new_checkout.base_directory, new_checkout.database_url) == (True, True)
    assert (old_checkout.base_directory, old_checkout.database_url) == (False, False)
    assert new_checkout.version == "0.3.64-standin"


def test_probe_needs_main_py(tmp_path):
    with pytest.raises(MissingPathError) as caught:
        probe_checkout(str(tmp_path))
    assert caught.value.exit_code == 66
    assert "COMFY_APP_DIRECTORY" in caught.value.lines()[0] and "main.py" in caught.value.lines()[0]
    assert caught.value.problems[0].kind == "missing-path"


def test_command_on_a_current_release(new_checkout):
    argv = build_command(config_for(COMFY_PORT="8189", COMFY_LISTEN="127.0.0.1"), new_checkout, "cuda")
    assert argv == [PYTHON, new_checkout.main_py, "--listen", "127.0.0.1", "--port", "8189",
                    "--disable-auto-launch", "--base-directory", "/data/instances/core-1",
                    "--database-url", "sqlite:////data/instances/core-1/user/comfyui.db"]


def test_command_on_an_old_release_has_neither_flag(old_checkout):
    argv = build_command(config_for(), old_checkout, "cuda")
    assert "--base-directory" not in argv and "--database-url" not in argv


def test_cpu_and_cuda_device_flags(new_checkout):
    assert build_command(config_for(), new_checkout, "cpu")[-1] == "--cpu"
    argv = build_command(config_for(COMFY_CUDA_DEVICE="1"), new_checkout, "cuda")
    assert argv[-2:] == ["--cuda-device", "1"] and "--cpu" not in argv


def test_user_arguments_come_last(new_checkout):
    argv = build_command(config_for(CLI_ARGS="--preview-method auto"), new_checkout, "cpu", ["--verbose", "DEBUG"])
    assert argv[-5:] == ["--cpu", "--preview-method", "auto", "--verbose", "DEBUG"]


def test_compatibility_mode_points_comfyui_at_the_old_layout(new_checkout):
    argv = build_command(load_config({"COMFY_DATA_DIRECTORY": "/data"}), new_checkout, "cpu")
    assert argv[argv.index("--base-directory") + 1] == "/data/comfy"
    assert argv[argv.index("--database-url") + 1] == "sqlite:////data/comfy/user/comfyui.db"


def fake_root(tmp_path, *paths):
    root = tmp_path / "root"
    for path in paths:
        target = root / path
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("")
    (root / "dev").mkdir(parents=True, exist_ok=True)
    return str(root)


def test_gpu_detection(tmp_path):
    assert detect_gpu({}, fake_root(tmp_path)) is None
    assert detect_gpu({}, fake_root(tmp_path, "dev/nvidiactl")) == "/dev/nvidiactl"
    assert detect_gpu({"NVIDIA_VISIBLE_DEVICES": "void"}, fake_root(tmp_path)) is None
    assert detect_gpu({"NVIDIA_VISIBLE_DEVICES": "none"}, fake_root(tmp_path)) is None


def test_gpu_detection_by_device_node_or_proc(tmp_path):
    assert detect_gpu({}, fake_root(tmp_path / "a", "dev/nvidia0")) == "/dev/nvidia0"
    assert detect_gpu({}, fake_root(tmp_path / "b", "dev/nvidia-uvm")) is None
    assert detect_gpu({}, fake_root(tmp_path / "c", "proc/driver/nvidia/gpus/0000:01:00.0/")) == "/proc/driver/nvidia/gpus"


def test_cuda_images_without_a_gpu_fall_back_to_cpu(tmp_path):
    # CUDA base images set NVIDIA_VISIBLE_DEVICES=all even when no GPU was given to the container.
    device, reason = resolve_device(config_for(), {"NVIDIA_VISIBLE_DEVICES": "all"}, fake_root(tmp_path))
    assert device == "cpu" and "no NVIDIA GPU" in reason
    device, _ = resolve_device(config_for(), {"NVIDIA_VISIBLE_DEVICES": "all"}, fake_root(tmp_path, "dev/nvidiactl"))
    assert device == "cuda"
    assert resolve_device(config_for(COMFY_DEVICE="cuda"), {}, fake_root(tmp_path))[0] == "cuda"


def test_old_release_gets_links_inside_the_checkout_and_keeps_its_folders(tmp_path, old_checkout):
    checkout = old_checkout.path
    os.makedirs(os.path.join(checkout, "models", "checkpoints"))
    with open(os.path.join(checkout, "models", "checkpoints", "baked.safetensors"), "w") as file:
        file.write("image's own")
    config = config_for(COMFY_DATA_DIRECTORY=str(tmp_path / "data"))
    steps = plan_checkout_links(config, old_checkout)
    kinds = {os.path.basename(step.path): step.kind for step in steps}
    assert kinds["models"] == MOVE_ASIDE and kinds["custom_nodes"] == LINK
    apply_steps(steps)
    assert os.readlink(os.path.join(checkout, "temp")) == str(tmp_path / "data" / "instances" / "core-1" / "temp")
    with open(os.path.join(checkout, "models.image-original", "checkpoints", "baked.safetensors")) as file:
        assert file.read() == "image's own"
    assert all(not step.changes_disk for step in plan_checkout_links(config, old_checkout))


def test_new_release_needs_no_links(new_checkout):
    assert plan_checkout_links(config_for(), new_checkout) == []
