"""compose profile cpu: compatibility mode on a data tree in the old single-instance layout.

Users of single-instance images have `$DATA/comfy/{models,custom_nodes,input,output,temp,user}`.
Started with COMFY_MULTI_INSTANCE=false, that tree must be what ComfyUI sees, and stay as it was.
"""

from __future__ import annotations

import os

import pytest

from tests.docker.helpers import (
    answers,
    compose,
    compose_container,
    compose_variables,
    http_json,
    make_data_dir,
    require_free_ports,
    tree_contents,
)

pytestmark = pytest.mark.docker

OLD_LAYOUT = {
    "models/checkpoints/old-checkpoint.safetensors": b"an old checkpoint",
    "models/loras/old-lora.safetensors": b"an old lora",
    "custom_nodes/old-node-pack/__init__.py": b"NODE_CLASS_MAPPINGS = {}\n",
    "input/old-input.png": b"\x89PNG old input",
    "output/ComfyUI_00001_.png": b"\x89PNG old output",
    "user/default/comfy.settings.json": b'{"Comfy.ColorPalette": "dark"}\n',
    "temp/old-temp.txt": b"ComfyUI itself empties temp at every start",
}


@pytest.fixture
def old_tree(tmp_path) -> tuple:
    data = make_data_dir(tmp_path / "data")
    comfy = data / "comfy"
    for rel, content in OLD_LAYOUT.items():
        path = comfy / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return data, comfy


@pytest.fixture
def compat_project(old_tree, test_images, docker_compose_project_name):
    data, comfy = old_tree
    project = f"{docker_compose_project_name}compat"
    env = compose_variables(test_images, data)
    require_free_ports(8188)
    try:
        compose(project, "up", "-d", "--no-build", "cpu", profiles=["cpu"], env=env)
        yield project, data, comfy
    finally:
        compose(project, "down", "-v", "--remove-orphans", profiles=["cpu"], env=env, check=False)


def test_old_layout_is_what_comfyui_sees_and_stays_unchanged(compat_project):
    project, data, comfy = compat_project
    # Everything but temp, which ComfyUI (not comfy-init) empties at start and at a graceful exit.
    def unchanged_part():
        return tree_contents(comfy, skip=lambda rel: rel.split(os.sep)[0] == "temp")
    before = {rel: content for rel, content in OLD_LAYOUT.items() if not rel.startswith("temp/")}

    container = compose_container(project, "cpu")
    container.wait_healthy(timeout=90)
    folders = http_json(8188, "/internal/folder_paths")
    assert folders["checkpoints"][0] == "/data/comfy/models/checkpoints"
    for key in ("custom_nodes", "input", "output", "user"):
        assert folders[key][0] == f"/data/comfy/{key}", (key, folders[key])
    assert folders["temp"][0].startswith("/data/comfy/temp"), folders["temp"]
    assert "old-checkpoint.safetensors" in http_json(8188, "/models/checkpoints")
    assert "old-lora.safetensors" in http_json(8188, "/models/loras")

    now = unchanged_part()
    assert {rel: now.get(rel) for rel in before} == before, "the old tree's files changed"
    assert not (data / "instances").exists(), "compatibility mode must not create instance folders"

    assert container.stop() < 8
    assert container.exit_code() == 0
    after = unchanged_part()
    assert {rel: after.get(rel) for rel in before} == before, "the old tree's files changed at stop"
    assert not answers(8188)
    container.assert_clean_logs()
    assert "Traceback" not in container.logs()


def test_a_migrated_tree_keeps_the_compat_profile_working(old_tree, test_images, docker_compose_project_name):
    """After `comfy-init migrate`, the old compose profile starts on the links the migration left,
    sees the same models and settings, and claims the migrated instance (not 'comfy')."""
    import subprocess
    import sys

    from tests.docker.helpers import read_registry

    data, comfy = old_tree
    migrated = subprocess.run([sys.executable, "-m", "comfy_init", "migrate", "--data", str(data), "--yes"],
                              capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    assert (comfy / "models").is_symlink() and (data / "shared/models/checkpoints/old-checkpoint.safetensors").is_file()
    project = f"{docker_compose_project_name}migrated"
    env = compose_variables(test_images, data)
    require_free_ports(8188)
    try:
        compose(project, "up", "-d", "--no-build", "cpu", profiles=["cpu"], env=env)
        container = compose_container(project, "cpu")
        container.wait_healthy(timeout=90)
        assert "old-checkpoint.safetensors" in http_json(8188, "/models/checkpoints")
        assert set(read_registry(data)["claims"]) == {"main"}
        assert container.stop() < 8
        assert container.exit_code() == 0
        container.assert_clean_logs()
    finally:
        compose(project, "down", "-v", "--remove-orphans", profiles=["cpu"], env=env, check=False)
    settings = data / "instances/main/user/default/comfy.settings.json"
    assert settings.read_bytes() == OLD_LAYOUT["user/default/comfy.settings.json"]
