"""COMFY_MANAGER: --enable-manager for a release that declares it (Manager 4) when the package is
installed for COMFY_PYTHON; nothing for older releases; a clear refusal (78) for `on` that cannot be
honoured. Real checkouts (stand-in copies), real folders, real `comfy-init run --dry-run` processes."""

import json
import os
import subprocess
import sys

import pytest

from comfy_init.comfyui.checkout import probe_checkout
from comfy_init.comfyui.manager import choose, package_location
from comfy_init.errors import ConfigError
from tests.support.manager import release_checkout

COMFY_INIT = [sys.executable, "-m", "comfy_init"]


def environment(root, *, package=False, pth_to=None):
    """A venv-shaped folder: bin/python (this interpreter, by link) and its site-packages, holding
    comfyui_manager when `package`, and a .pth that adds `pth_to` (as the per-instance venv does)."""
    site = root / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "bin" / "python").symlink_to(sys.executable)
    if package:
        (site / "comfyui_manager").mkdir()
        (site / "comfyui_manager" / "__init__.py").write_text("")
    if pth_to is not None:
        (site / "image-packages.pth").write_text(f"# the image's packages\n{pth_to}\nimport os\n")
    return root / "bin" / "python"


def dry_run(env):
    result = subprocess.run(COMFY_INIT + ["run", "--dry-run", "--json"], env=env, capture_output=True,
                            text=True, timeout=60)
    return result


@pytest.fixture
def manager4(tmp_path):
    return release_checkout(tmp_path / "comfyui-0.38", manager4=True)


@pytest.fixture
def older(tmp_path):
    return release_checkout(tmp_path / "comfyui-0.3", manager4=False)


def test_the_probe_reads_the_flag(manager4, older):
    assert probe_checkout(str(manager4)).enable_manager is True
    assert probe_checkout(str(older)).enable_manager is False


def test_the_package_is_found_in_the_environment_or_through_a_pth(tmp_path):
    assert package_location(str(environment(tmp_path / "with", package=True))) == \
        str(tmp_path / "with" / "lib" / "python3.11" / "site-packages")
    assert package_location(str(environment(tmp_path / "without"))) is None
    image = tmp_path / "image-site"
    (image / "comfyui_manager").mkdir(parents=True)
    (image / "comfyui_manager" / "__init__.py").write_text("")
    assert package_location(str(environment(tmp_path / "instance-venv", pth_to=image))) == str(image)


def test_auto_enables_for_manager4_with_the_package_and_never_for_older(tmp_path, manager4, older):
    python = str(environment(tmp_path / "venv", package=True))
    assert choose("auto", probe_checkout(str(manager4)), python).enabled is True
    assert choose("on", probe_checkout(str(manager4)), python).enabled is True
    assert choose("off", probe_checkout(str(manager4)), python).enabled is False
    assert choose("auto", probe_checkout(str(older)), python).enabled is False
    bare = str(environment(tmp_path / "bare"))
    assert choose("auto", probe_checkout(str(manager4)), bare).enabled is False


def test_on_refuses_an_older_release_and_a_missing_package(tmp_path, manager4, older):
    python = str(environment(tmp_path / "venv", package=True))
    with pytest.raises(ConfigError) as caught:
        choose("on", probe_checkout(str(older)), python)
    assert caught.value.exit_code == 78
    assert "COMFY_MANAGER=on" in str(caught.value) and "--enable-manager" in str(caught.value)
    bare = str(environment(tmp_path / "bare"))
    with pytest.raises(ConfigError) as caught:
        choose("on", probe_checkout(str(manager4)), bare)  # the interpreter is asked too: not there either
    assert caught.value.exit_code == 78
    assert "comfyui_manager" in str(caught.value) and "manager_requirements.txt" in str(caught.value)


def run_env(base_env, app, python, **extra):
    return {**base_env, "COMFY_APP_DIRECTORY": str(app), "COMFY_PYTHON": str(python), **extra}


def test_the_command_line_has_enable_manager_for_0_38_and_not_for_older(base_env, tmp_path, manager4, older):
    python = environment(tmp_path / "venv", package=True)
    new = dry_run(run_env(base_env, manager4, python))
    assert new.returncode == 0, new.stderr
    plan = json.loads(new.stdout)["data"]
    assert plan["command"][:2] == [str(python), str(manager4 / "main.py")]
    assert plan["command"].count("--enable-manager") == 1
    assert plan["manager"]["enabled"] is True
    old = dry_run(run_env(base_env, older, python))
    assert old.returncode == 0, old.stderr
    assert "--enable-manager" not in json.loads(old.stdout)["data"]["command"]
    off = dry_run(run_env(base_env, manager4, python, COMFY_MANAGER="off"))
    assert "--enable-manager" not in json.loads(off.stdout)["data"]["command"]


@pytest.mark.parametrize("case", ["older release", "no package"])
def test_run_refuses_on_with_one_clear_line_and_exit_78(base_env, tmp_path, manager4, older, case):
    app, python = (older, environment(tmp_path / "venv", package=True)) if case == "older release" \
        else (manager4, environment(tmp_path / "bare"))
    before = sorted(os.listdir(tmp_path))
    result = subprocess.run(COMFY_INIT + ["run"], env=run_env(base_env, app, python, COMFY_MANAGER="on"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 78, result.stderr
    lines = [line for line in result.stderr.splitlines() if "COMFY_MANAGER=on" in line]
    assert len(lines) == 1, result.stderr
    assert sorted(os.listdir(tmp_path)) == before, "a refused start writes nothing (no data folder)"


def test_a_bad_value_is_a_bad_setting(base_env):
    result = subprocess.run(COMFY_INIT + ["run", "--dry-run"], env={**base_env, "COMFY_MANAGER": "yes please"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert "COMFY_MANAGER='yes please': must be one of auto, on, off" in result.stderr
