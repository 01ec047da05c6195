"""docker/install-manager.sh, the complete image's Manager step, run here on stand-in releases:
Manager 4 (manager_requirements.txt) gets the pinned pip package and no extra paths file; an older
release gets the custom-node Manager, wired by the extra paths file under the name it reads."""

import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.manager import MANAGER_REQUIREMENT, real_manager_python, release_checkout

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docker" / "install-manager.sh"
YAML = ROOT / "docker" / "extra_model_paths.complete.yaml"
FIXTURE = ROOT / "tests" / "docker" / "fixtures" / "comfyui-manager"


def install(tmp_path, comfyui, python):
    source = tmp_path / "manager-source"
    subprocess.run(["cp", "-r", str(FIXTURE), str(source)], check=True)
    env = {"PATH": "/usr/bin:/bin", "COMFYUI_DIR": str(comfyui), "EXTRAS": str(tmp_path / "extras"),
           "PIP": f"{python} -m pip --disable-pip-version-check"}
    return subprocess.run(["bash", str(SCRIPT), str(source), str(YAML)], env=env, capture_output=True,
                          text=True, timeout=300)


def test_manager4_release_gets_the_pinned_package_and_no_custom_node(tmp_path):
    comfyui = release_checkout(tmp_path / "comfyui-0.38", manager4=True)
    python = real_manager_python()  # pip finds the pin already installed there: no download
    result = install(tmp_path, comfyui, python)
    assert result.returncode == 0, result.stderr
    assert MANAGER_REQUIREMENT in result.stdout
    assert not (tmp_path / "extras").exists()
    assert not (comfyui / "extra_model_paths.yaml").exists() and not (comfyui / "extra_paths.yaml").exists()
    shown = subprocess.run([str(python), "-m", "pip", "show", "comfyui-manager"], capture_output=True, text=True)
    assert "Version: " + MANAGER_REQUIREMENT.split("==")[1] in shown.stdout


def wiring(comfyui, name):
    (section,) = yaml.safe_load((comfyui / name).read_text()).values()
    return section


def test_older_release_gets_the_custom_node_manager_wired_by_extra_model_paths(tmp_path):
    comfyui = release_checkout(tmp_path / "comfyui-0.3", manager4=False)
    result = install(tmp_path, comfyui, sys.executable)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "extras" / "custom_nodes" / "ComfyUI-Manager" / "__init__.py").is_file()
    assert wiring(comfyui, "extra_model_paths.yaml") == {"base_path": str(Path("/opt/comfy-extras")),
                                                         "custom_nodes": "custom_nodes"}
    assert not (comfyui / "extra_paths.yaml").exists()


def test_a_release_that_reads_extra_paths_yaml_gets_that_name_only(tmp_path):
    comfyui = release_checkout(tmp_path / "comfyui-extra-paths", manager4=False)
    main = comfyui / "main.py"
    main.write_text(main.read_text() + "\n# ComfyUI reads extra_paths.yaml next to this file, before extra_model_paths.yaml\n")
    result = install(tmp_path, comfyui, sys.executable)
    assert result.returncode == 0, result.stderr
    assert wiring(comfyui, "extra_paths.yaml")["custom_nodes"] == "custom_nodes"
    assert not (comfyui / "extra_model_paths.yaml").exists(), "one file: the release never has to pick"
