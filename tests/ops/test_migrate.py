"""`comfy-init migrate` on each single-instance layout: where everything goes, that nothing is lost
(manifests taken by the tests, independently of comfy-init's own), merges, reruns and rollback."""

import json
import os
import sqlite3
import subprocess

import pytest

from comfy_init.layout import MODEL_FOLDERS, Layout
from comfy_init.store.migration_journal import Journal
from comfy_init.ops.migrate.migration import migrate, rollback, unfinished
from comfy_init.store.registry import Registry
from tests.support.oldtrees import build, manifest, old_manifests, resolved_manifests
from tests.support.processes import COMFY_INIT
from tests.support.standin import STANDIN_DIR
from tests.support.treesnap import snapshot

FOLDERS = ("models", "custom_nodes", "user", "output", "input")


def destination(layout, name, instance_id="main"):
    if name == "models":
        return layout.shared_models
    if name == "input":
        return layout.shared_input
    return layout.instance(instance_id).folder(name)


def assert_carried(before, layout, root, instance_id="main"):
    """Every entry of each old folder is at its new place, as it was (links judged by what they
    resolve to); the new places hold nothing else but the empty model folders the tree makes."""
    for name in FOLDERS:
        new = manifest(destination(layout, name, instance_id))
        old = before[name]
        changed = {path: (old[path], new.get(path)) for path in old if new.get(path) != old[path] and path != "."}
        assert not changed, f"{name}: {changed}"
        extra = set(new) - set(old)
        assert all(name == "models" and path in MODEL_FOLDERS for path in extra), extra
        assert os.path.realpath(os.path.join(root, name)) == os.path.realpath(destination(layout, name, instance_id))
        assert os.path.islink(os.path.join(root, name)), "the old place keeps working through a relative link"
        assert not os.path.isabs(os.readlink(os.path.join(root, name)))


@pytest.mark.parametrize("kind", ["compat", "per-folder", "checkout"])
def test_each_layout_moves_whole_and_verified(tmp_path, kind):
    data = tmp_path / "data"
    root = build(str(data), kind)
    before, temp_before = resolved_manifests(root), manifest(f"{root}/temp")
    layout = Layout(str(data))
    result = migrate(layout, from_path=root if kind == "checkout" else None, instance_id="main")
    assert result.exit_code == 0, result.problems
    assert result.data["verified"]["difference_count"] == 0
    assert result.data["verified"]["matched"] == result.data["verified"]["entries"] > 20
    assert_carried(before, layout, root)
    assert manifest(f"{root}/temp") == temp_before, "temp is not carried"
    assert "main" in Registry(layout).load()["instances"]
    with sqlite3.connect(layout.instance("main").database) as database:
        assert database.execute("SELECT x FROM t").fetchall() == [(42,)]
    database.close()
    # Relative links point where they pointed: the node's link still reaches the checkpoints.
    node_link = f"{layout.instance('main').custom_nodes}/node-a/checkpoints"
    assert os.path.realpath(node_link) == os.path.realpath(f"{layout.shared_models}/checkpoints")
    if kind == "checkout":
        assert any("extra_model_paths.yaml" in line for line in result.lines)


def test_migrated_instance_starts_in_both_modes(tmp_path):
    """Multi-instance mode needs no further step; compatibility mode on the migrated tree claims the
    same instance, so the two can never run at once."""
    data = tmp_path / "data"
    build(str(data), "compat")
    assert migrate(Layout(str(data)), instance_id="main").exit_code == 0
    env = {"PATH": os.environ["PATH"], "COMFY_DATA_DIRECTORY": str(data), "COMFY_APP_DIRECTORY": str(STANDIN_DIR),
           "COMFY_DEVICE": "cpu"}
    multi = subprocess.run(COMFY_INIT + ["--dry-run", "--json"], env=dict(env, COMFY_MULTI_INSTANCE="true",
                           COMFY_INSTANCE_ID="main"), capture_output=True, text=True, timeout=60)
    assert multi.returncode == 0, multi.stderr
    compat = subprocess.run(COMFY_INIT + ["--dry-run", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert compat.returncode == 0, compat.stderr
    assert json.loads(compat.stdout)["data"]["config"]["instance_id"] == "main"
    other = subprocess.run(COMFY_INIT + ["--dry-run"], env=dict(env, COMFY_INSTANCE_ID="other"),
                           capture_output=True, text=True, timeout=60)
    assert other.returncode == 78 and "migrated to instance 'main'" in other.stderr


def test_dry_run_changes_nothing(tmp_path):
    data = tmp_path / "data"
    build(str(data), "compat")
    before = snapshot(str(data / "comfy" / "user")), manifest(str(data), exact_links=True)
    result = migrate(Layout(str(data)), instance_id="main", dry_run=True)
    assert result.exit_code == 0
    assert (snapshot(str(data / "comfy" / "user")), manifest(str(data), exact_links=True)) == before
    folders = result.data["plan"]["folders"]
    assert folders["custom_nodes"]["how"] == "rename" and folders["models"]["entries"] >= 7
    assert folders["models"]["bytes"] >= 1 << 30
    assert any("temp" in note and "not carried" in note for note in result.data["plan"]["notes"])


def test_merge_keeps_one_copy_of_the_same_file_and_both_of_different_ones(tmp_path):
    data = tmp_path / "data"
    root = build(str(data), "compat")
    layout = Layout(str(data))
    shared = f"{layout.shared_models}/checkpoints"
    os.makedirs(shared)
    with open(f"{root}/models/checkpoints/sd15.safetensors", "rb") as file:
        same = file.read()
    with open(f"{shared}/sd15.safetensors", "wb") as file:
        file.write(same)
    os.makedirs(f"{root}/models/upscale_models")
    for side, text in ((root + "/models", b"incoming"), (layout.shared_models, b"already shared")):
        os.makedirs(f"{side}/upscale_models", exist_ok=True)
        with open(f"{side}/upscale_models/x4.pth", "wb") as file:
            file.write(text)
    exact = old_manifests(root)
    result = migrate(layout, instance_id="main")
    assert result.exit_code == 0, result.problems
    plan = result.data["plan"]
    assert [item["path"] for item in plan["duplicates"]] == [f"{root}/models/checkpoints/sd15.safetensors"]
    assert plan["renamed"] == [{"path": f"{root}/models/upscale_models/x4.pth",
                                "to": f"{layout.shared_models}/upscale_models/x4.migrated.pth",
                                "because": f"{layout.shared_models}/upscale_models/x4.pth differs"}]
    with open(f"{layout.shared_models}/upscale_models/x4.pth", "rb") as file:
        assert file.read() == b"already shared"
    with open(f"{layout.shared_models}/upscale_models/x4.migrated.pth", "rb") as file:
        assert file.read() == b"incoming"
    parked = plan["duplicates"][0]["parked"]
    assert os.path.isfile(parked) and parked.startswith(layout.trash), "the duplicate is parked, not deleted"
    assert os.path.getsize(f"{shared}/big.safetensors") == 1 << 30
    # The node's link reaches the merged folder (not the old one, which the merge emptied and removed).
    assert os.path.realpath(f"{layout.instance('main').custom_nodes}/node-a/checkpoints") == os.path.realpath(shared)
    # And back: every file where it was, the shared ones untouched.
    assert rollback(layout).exit_code == 0
    assert old_manifests(root) == exact
    with open(f"{shared}/sd15.safetensors", "rb") as file:
        assert file.read() == same


def test_rerun_after_finish_and_rollback_restores_exactly(tmp_path):
    data = tmp_path / "data"
    root = build(str(data), "per-folder")
    layout = Layout(str(data))
    exact = old_manifests(root)
    assert migrate(layout, instance_id="main").exit_code == 0
    again = migrate(layout, instance_id="main")
    assert again.exit_code == 0 and "already migrated" in again.lines[0]
    result = rollback(layout)
    assert result.exit_code == 0, result.problems
    assert old_manifests(root) == exact
    assert "main" not in Registry(layout).load()["instances"]
    assert not os.path.lexists(layout.instance("main").root), "the skeleton the migration made is gone"
    assert Journal.read(layout.migration_journal) is None, "the finished journal is archived"
    assert any(name.startswith("migration-journal.") and "rolled-back" in name for name in os.listdir(layout.meta))
    assert migrate(layout, instance_id="main").exit_code == 0, "and it can migrate again"


def test_into_an_existing_instance_merges_its_folders(tmp_path):
    data = tmp_path / "data"
    root = build(str(data), "compat")
    layout = Layout(str(data))
    from comfy_init.ops.instances import create_instance

    assert create_instance(layout, "studio").exit_code == 0
    os.makedirs(f"{layout.instance('studio').custom_nodes}/their-node")
    before = resolved_manifests(root)
    result = migrate(layout, instance_id="studio")
    assert result.exit_code == 0, result.problems
    assert result.data["plan"]["folders"]["custom_nodes"]["how"] == "merge"
    assert os.path.isdir(f"{layout.instance('studio').custom_nodes}/their-node")
    assert manifest(f"{layout.instance('studio').custom_nodes}/node-a") == {
        path[len("node-a/"):] or ".": entry for path, entry in before["custom_nodes"].items()
        if path == "node-a" or path.startswith("node-a/")}


def test_refuses_while_comfyui_runs_on_the_old_tree(tmp_path):
    from comfy_init.store.locks import try_lock

    data = tmp_path / "data"
    root = build(str(data), "compat")
    lock = try_lock(f"{root}/user/comfyui.db.lock")  # what ComfyUI 0.38 holds while it runs
    before = manifest(str(data), exact_links=True)
    child = os.fork()
    if child == 0:  # another process must ask: our own flock would not block us
        result = migrate(Layout(str(data)), instance_id="main")
        os._exit(result.exit_code)
    _, status = os.waitpid(child, 0)
    lock.release()
    assert os.waitstatus_to_exitcode(status) == 75
    after = manifest(str(data), exact_links=True)
    assert {k: v for k, v in after.items() if not k.startswith("meta")} == before


def test_nothing_to_migrate_and_bad_from(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    layout = Layout(str(data))
    result = migrate(layout)
    assert result.exit_code == 0 and result.data["state"] == "nothing-to-migrate"
    assert migrate(layout, from_path=str(tmp_path / "nope")).exit_code == 66
    assert migrate(layout, instance_id="Bad_Id").exit_code == 64


def test_unfinished_journal_is_a_problem_until_resumed(tmp_path):
    from comfy_init.store import migration_journal as journal_module

    data = tmp_path / "data"
    build(str(data), "compat")
    layout = Layout(str(data))
    child = os.fork()
    if child == 0:
        journal_module.after_record = lambda count: os.kill(os.getpid(), 9) if count == 6 else None
        migrate(layout, instance_id="main")
        os._exit(0)
    os.waitpid(child, 0)
    [problem] = unfinished(layout)
    assert problem.kind == "migration-unfinished"
    assert migrate(layout, instance_id="main", dry_run=True).data["resume"] is True
    assert migrate(layout, instance_id="main").exit_code == 0
    assert unfinished(layout) == []


def test_what_instance_create_refuses_is_refused_before_the_journal_starts(tmp_path):
    data = tmp_path / "data"
    root = build(str(data), "compat")
    layout = Layout(str(data))
    before = manifest(root, exact_links=True)
    shipped = migrate(layout, instance_id="core-1")  # a service of the shipped compose file
    assert shipped.exit_code == 64 and "shipped compose file" in shipped.problems[0].message
    from comfy_init.ops.instances import create_instance

    assert create_instance(layout, "other", port=8301).exit_code == 0
    taken = migrate(layout, instance_id="main", port=8301)
    assert taken.exit_code == 65 and taken.problems[0].kind == "port-conflict"
    assert not os.path.lexists(layout.migration_journal)
    assert manifest(root, exact_links=True) == before


def test_refuses_while_a_container_runs_the_old_tree_in_compatibility_mode(tmp_path):
    """A live compatibility-mode claim (its comfy-init holds meta/locks/comfy.lock)."""
    from comfy_init.store.locks import try_lock

    data = tmp_path / "data"
    root = build(str(data), "compat")
    layout = Layout(str(data))
    os.makedirs(layout.locks)
    read, write = os.pipe()
    holder = os.fork()
    if holder == 0:
        os.close(read)
        lock = try_lock(layout.lock_path("comfy"))
        os.write(write, b"x")
        time_to_live = 30
        import time

        time.sleep(time_to_live)
        lock.release()
        os._exit(0)
    os.close(write)
    os.read(read, 1)
    try:
        before = manifest(root, exact_links=True)
        result = migrate(layout, instance_id="main")
        assert result.exit_code == 75 and result.problems[0].kind == "instance-held"
        assert "'comfy'" in result.problems[0].message
        assert manifest(root, exact_links=True) == before
    finally:
        os.kill(holder, 9)
        os.waitpid(holder, 0)


def test_check_finds_an_unfinished_migration_and_fix_finishes_it(tmp_path):
    from comfy_init.store import migration_journal as journal_module

    data = tmp_path / "data"
    root = build(str(data), "compat")
    before = resolved_manifests(root)
    layout = Layout(str(data))
    child = os.fork()
    if child == 0:
        journal_module.after_record = lambda count: os.kill(os.getpid(), 9) if count == 9 else None
        migrate(layout, instance_id="main")
        os._exit(0)
    os.waitpid(child, 0)
    from click.testing import CliRunner

    from comfy_init.cli.main import cli

    found = json.loads(CliRunner().invoke(cli, ["check", "--data", str(data), "--json"]).output)
    assert "migration-unfinished" in {problem["kind"] for problem in found["problems"]}
    fixed = CliRunner().invoke(cli, ["check", "--fix", "--data", str(data), "--json"])
    document = json.loads(fixed.output)
    assert "migration-unfinished" not in {problem["kind"] for problem in document["problems"]}
    assert unfinished(layout) == []
    assert_carried(before, layout, root)


def test_rollback_after_changes_still_ends_and_loses_nothing(tmp_path):
    data = tmp_path / "data"
    root = build(str(data), "compat")
    layout = Layout(str(data))
    assert migrate(layout, instance_id="main").exit_code == 0
    new_output = f"{layout.instance('main').output}/made-after-the-migration.png"
    with open(new_output, "wb") as file:
        file.write(b"new")
    result = rollback(layout)
    assert result.exit_code == 0, result.problems
    assert any("made-after-the-migration.png" in line and "kept" in line for line in result.lines)
    assert result.data["state"] == "rolled-back" and unfinished(layout) == []
    with open(f"{root}/output/made-after-the-migration.png", "rb") as file:
        assert file.read() == b"new", "it came back with its folder"
