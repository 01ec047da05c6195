import os

import pytest

from comfy_init.boot.config import load_config
from comfy_init.errors import DataError, PermissionDeniedError
from comfy_init.layout import MODEL_FOLDERS
from comfy_init.tree.apply import apply_steps
from comfy_init.tree.planner import plan_tree as plan_layout


def plan_tree(config):
    """The tree of the configuration's own instance, as `comfy-init run` plans it."""
    return plan_layout(config.layout, config.instance, multi=config.multi_instance)
from tests.support.treesnap import snapshot


def multi(tmp_path, instance="core-1", **extra):
    env = {"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": instance,
           "COMFY_DATA_DIRECTORY": str(tmp_path / "data")}
    env.update(extra)
    return load_config(env)


def prepare(config):
    apply_steps(plan_tree(config))


@pytest.fixture
def public_data_root():
    """A data root that user nobody can reach (pytest's own tmp_path is private to root)."""
    import shutil
    import tempfile

    root = tempfile.mkdtemp(prefix="comfy-init-test-", dir="/tmp")
    os.chmod(root, 0o755)
    yield root
    for directory, _, _ in os.walk(root):
        os.chmod(directory, 0o755)
    shutil.rmtree(root)


def plan_as_nobody(env):
    """plan_tree in a child process as user nobody (or as ourselves when not root): (status, first line, stderr)."""
    import subprocess

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys; from comfy_init.boot.config import load_config; from comfy_init.tree.planner import plan_tree\n"
            "from comfy_init.errors import ComfyInitError\n"
            f"try:\n  c = load_config({env!r}); plan_tree(c.layout, c.instance, multi=c.multi_instance)\nexcept ComfyInitError as e:\n"
            "  print(e.lines()[0]); sys.exit(e.exit_code)\n")
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    result = subprocess.run(prefix + [os.sys.executable, "-c", code], capture_output=True, text=True,
                            cwd="/", env={"PYTHONPATH": repo})
    return result.returncode, result.stdout, result.stderr


def test_creates_the_whole_tree(tmp_path):
    config = multi(tmp_path)
    prepare(config)
    data = tmp_path / "data"
    for name in MODEL_FOLDERS:
        assert (data / "shared" / "models" / name).is_dir()
    assert {"clip", "unet"} <= set(MODEL_FOLDERS)
    instance = data / "instances" / "core-1"
    for name in ("custom_nodes", "user", "temp", "output"):
        assert (instance / name).is_dir() and not (instance / name).is_symlink()
    assert os.readlink(instance / "models") == "../../shared/models"
    assert os.readlink(instance / "input") == "../../shared/input"
    for name in ("shared-configs", "backup-snapshots", "locks"):
        assert (data / "meta" / name).is_dir()
    assert (data / "shared" / "workflows").is_dir()


def test_links_are_relative_so_the_tree_works_anywhere(tmp_path):
    prepare(multi(tmp_path))
    (tmp_path / "data" / "shared" / "models" / "checkpoints" / "a.safetensors").write_bytes(b"x")
    os.rename(tmp_path / "data", tmp_path / "moved")
    assert (tmp_path / "moved" / "instances" / "core-1" / "models" / "checkpoints" / "a.safetensors").read_bytes() == b"x"


def test_second_run_writes_nothing(tmp_path):
    config = multi(tmp_path)
    prepare(config)
    before = snapshot(tmp_path / "data")
    steps = plan_tree(config)
    assert [step for step in steps if step.changes_disk] == []
    apply_steps(steps)
    assert snapshot(tmp_path / "data") == before


def test_two_instances_share_models_but_nothing_else(tmp_path):
    prepare(multi(tmp_path, "core-1"))
    prepare(multi(tmp_path, "core-2"))
    instances = tmp_path / "data" / "instances"
    assert os.path.realpath(instances / "core-1" / "models") == os.path.realpath(instances / "core-2" / "models")
    assert os.path.realpath(instances / "core-1" / "temp") != os.path.realpath(instances / "core-2" / "temp")


def test_empty_directory_in_place_of_a_link_is_replaced(tmp_path):
    config = multi(tmp_path)
    (tmp_path / "data" / "instances" / "core-1" / "input").mkdir(parents=True)
    prepare(config)
    assert os.readlink(tmp_path / "data" / "instances" / "core-1" / "input") == "../../shared/input"


def test_full_directory_in_place_of_a_link_stops_with_65_and_nothing_is_written(tmp_path):
    config = multi(tmp_path)
    legacy = tmp_path / "data" / "instances" / "core-1" / "models"
    (legacy / "checkpoints").mkdir(parents=True)
    (legacy / "checkpoints" / "big.safetensors").write_bytes(b"weights")
    before = snapshot(tmp_path / "data")
    with pytest.raises(DataError) as caught:
        plan_tree(config)
    (line,) = caught.value.lines()
    assert str(legacy) in line and "holds 1 entry (checkpoints)" in line and "move its contents into" in line
    assert caught.value.exit_code == 65
    assert snapshot(tmp_path / "data") == before


def test_absolute_link_to_the_right_place_is_made_relative(tmp_path):
    config = multi(tmp_path)
    prepare(config)
    link = tmp_path / "data" / "instances" / "core-1" / "models"
    os.unlink(link)
    os.symlink(tmp_path / "data" / "shared" / "models", link)
    prepare(config)
    assert os.readlink(link) == "../../shared/models"


def test_link_to_somewhere_else_is_refused(tmp_path):
    config = multi(tmp_path)
    prepare(config)
    link = tmp_path / "data" / "instances" / "core-1" / "models"
    (tmp_path / "elsewhere").mkdir()
    os.unlink(link)
    os.symlink(tmp_path / "elsewhere", link)
    with pytest.raises(DataError) as caught:
        plan_tree(config)
    assert "must lead to" in caught.value.lines()[0]
    assert os.readlink(link) == str(tmp_path / "elsewhere")


def test_links_escaping_the_data_root_are_refused(tmp_path):
    config = multi(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "data" / "instances").mkdir(parents=True)
    os.symlink(outside, tmp_path / "data" / "instances" / "core-1")
    os.symlink(outside, tmp_path / "data" / "shared")
    before = snapshot(tmp_path)
    with pytest.raises(DataError) as caught:
        plan_tree(config)
    assert len(caught.value.lines()) == 2
    assert all("outside the data root" in line for line in caught.value.lines())
    assert snapshot(tmp_path) == before


def test_links_inside_the_data_root_are_followed(tmp_path):
    config = multi(tmp_path)
    (tmp_path / "data" / "big-disk" / "custom").mkdir(parents=True)
    (tmp_path / "data" / "instances" / "core-1").mkdir(parents=True)
    os.symlink("../../big-disk/custom", tmp_path / "data" / "instances" / "core-1" / "custom_nodes")
    prepare(config)
    assert os.path.islink(tmp_path / "data" / "instances" / "core-1" / "custom_nodes")


def test_a_file_where_a_directory_belongs(tmp_path):
    config = multi(tmp_path)
    (tmp_path / "data" / "instances" / "core-1").mkdir(parents=True)
    (tmp_path / "data" / "instances" / "core-1" / "output").write_text("not a dir")
    with pytest.raises(DataError) as caught:
        plan_tree(config)
    assert "is a file where a directory belongs" in caught.value.lines()[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a read-only tmpfs")
def test_read_only_directory_stops_with_77(tmp_path):
    import subprocess

    config = multi(tmp_path)
    prepare(config)
    output = tmp_path / "data" / "instances" / "core-1" / "output"
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(output)]).returncode != 0:
        pytest.skip("cannot mount tmpfs here")
    try:
        with pytest.raises(PermissionDeniedError) as caught:
            plan_tree(config)
        assert caught.value.exit_code == 77
        assert caught.value.lines()[0].startswith(f"{output}: cannot be written")
        assert caught.value.problems[0].kind == "not-writable"
    finally:
        subprocess.run(["umount", str(output)], check=True)


def test_unwritable_directory_stops_with_77_for_a_plain_user(public_data_root):
    env = {"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "core-1",
           "COMFY_DATA_DIRECTORY": os.path.join(public_data_root, "data")}
    prepare(load_config(env))  # made by root: nobody may read but not write
    if os.geteuid() != 0:
        os.chmod(os.path.join(public_data_root, "data", "instances", "core-1", "temp"), 0o500)
    status, line, stderr = plan_as_nobody(env)
    assert status == 77, stderr
    assert ": cannot be written, and ComfyUI must write there" in line


def test_compatibility_mode_creates_only_what_is_missing_and_moves_nothing(tmp_path):
    comfy = tmp_path / "data" / "comfy"
    for name in ("models/checkpoints", "custom_nodes/MyNode", "input", "output", "user/default"):
        (comfy / name).mkdir(parents=True)
    (comfy / "models" / "checkpoints" / "sd.safetensors").write_bytes(b"w")
    (comfy / "output" / "img.png").write_bytes(b"png")
    (comfy / "user" / "default" / "comfy.settings.json").write_text("{}")
    before = snapshot(comfy)
    config = load_config({"COMFY_DATA_DIRECTORY": str(tmp_path / "data")})
    steps = plan_tree(config)
    changes = [step.path for step in steps if step.changes_disk]
    assert changes == [str(comfy / "temp"), str(tmp_path / "data" / "meta")] + [
        str(tmp_path / "data" / "meta" / name) for name in ("shared-configs", "backup-snapshots", "locks")]
    apply_steps(steps)
    after = snapshot(comfy)
    del after["temp"]
    after["."] = before["."]  # temp was added to the directory itself
    assert after == before
    assert not (tmp_path / "data" / "shared").exists()
    assert not (tmp_path / "data" / "instances").exists()


def test_links_are_made_atomically_and_replace_only_links(tmp_path, monkeypatch):
    """A new link is one symlink() call (atomic, never replaces anything); an existing link is
    re-pointed by renaming a new link over it, so the path is never missing."""
    config = multi(tmp_path)
    prepare(config)
    link = tmp_path / "data" / "instances" / "core-1" / "models"
    os.unlink(link)
    os.symlink(tmp_path / "data" / "shared" / "models", link)  # absolute: gets rewritten
    calls = []
    real_replace = os.replace

    def watching_replace(source, destination):
        calls.append((os.path.islink(source), os.path.basename(destination)))
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", watching_replace)
    prepare(config)
    assert calls == [(True, "models")]
    assert os.readlink(link) == "../../shared/models"
    leftovers = [n for n in os.listdir(link.parent) if "comfy-init-link" in n]
    assert leftovers == []


def test_what_appears_between_planning_and_applying_is_kept(tmp_path):
    config = multi(tmp_path)
    steps = plan_tree(config)
    late = tmp_path / "data" / "instances" / "core-1" / "input"
    late.parent.mkdir(parents=True)
    late.write_text("precious")
    with pytest.raises(DataError) as caught:
        apply_steps(steps)
    assert "something appeared here" in caught.value.lines()[0]
    assert late.read_text() == "precious"


def test_compatibility_mode_keeps_links_of_the_old_layout_to_other_disks(tmp_path):
    other_disk = tmp_path / "big-disk" / "models"
    (other_disk / "checkpoints").mkdir(parents=True)
    comfy = tmp_path / "data" / "comfy"
    comfy.mkdir(parents=True)
    os.symlink(other_disk, comfy / "models")
    config = load_config({"COMFY_DATA_DIRECTORY": str(tmp_path / "data")})
    steps = plan_tree(config)
    assert [s.kind for s in steps if s.path == str(comfy / "models")] == ["ok"]
    apply_steps(steps)
    assert os.readlink(comfy / "models") == str(other_disk)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a read-only tmpfs")
def test_missing_directory_under_a_read_only_parent_is_reported_before_anything_is_written(tmp_path):
    import subprocess

    data = tmp_path / "data"
    data.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(data)]).returncode != 0:
        pytest.skip("cannot mount tmpfs here")
    try:
        with pytest.raises(PermissionDeniedError) as caught:
            plan_tree(multi(tmp_path))
        assert caught.value.exit_code == 77
        assert caught.value.lines() == [
            f"{data}: cannot be written, and shared, instances, meta must be created there; make it writable "
            "for uid 0, or mount the data directory read-write"]
    finally:
        subprocess.run(["umount", str(data)], check=True)


def test_unreadable_directory_where_a_link_belongs_is_reported_not_a_traceback(public_data_root):
    env = {"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "core-1",
           "COMFY_DATA_DIRECTORY": os.path.join(public_data_root, "data")}
    models = os.path.join(public_data_root, "data", "instances", "core-1", "models")
    os.makedirs(models)
    os.chmod(models, 0o700 if os.geteuid() == 0 else 0o000)
    status, line, stderr = plan_as_nobody(env)
    assert "Traceback" not in stderr, stderr
    assert status == 77, stderr
    assert models in line and "cannot be listed" in line
