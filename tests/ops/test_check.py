"""`check`: every planted conflict is found by its kind, at its path; --fix does the safe fixes
and nothing else (the rest of the tree is byte for byte what it was)."""

import os
import sqlite3
import time

import pytest

from comfy_init.layout import Layout
from comfy_init.ops.check.run import CHECKERS, Checker, check_data
from comfy_init.ops.instances import create_instance
from comfy_init.store.registry import Registry
from tests.support.registry_data import flock_held_elsewhere
from tests.support.treesnap import snapshot as tree_state

OLD = time.time() - 3 * 3600


@pytest.fixture
def layout(tmp_path):
    layout = Layout(str(tmp_path / "data"))
    for instance_id in ("a-1", "b-1", "c-1"):
        assert create_instance(layout, instance_id).exit_code == 0
    return layout


def check(layout, **options):
    return check_data(layout, **options)


def kinds_at(result):
    return {(problem.kind, problem.path) for problem in result.problems}


def make_old(path):
    os.utime(path, (OLD, OLD), follow_symlinks=False)
    return path


def make_database(path):
    connection = sqlite3.connect(path)
    connection.execute("create table assets (id integer primary key, name text)")
    connection.execute("insert into assets (name) values ('x')")
    connection.commit()
    connection.close()


def edit_registry(layout, change):
    with Registry(layout).transaction() as document:
        change(document)


def test_a_fresh_tree_is_clean_and_exits_0(layout):
    result = check(layout)
    assert (result.exit_code, result.problems) == (0, [])
    assert result.data["instances"] == ["a-1", "b-1", "c-1"] and "no findings" in result.lines[-1]


def test_an_empty_data_directory_is_clean(tmp_path):
    result = check(Layout(str(tmp_path)))
    assert (result.exit_code, result.problems, result.data["instances"]) == (0, [], [])


# -- each conflict, planted, is found by its kind at its path ------------------------------------

def _output_into_other(layout):
    path = layout.instance("b-1").output
    os.rmdir(path)
    os.symlink("../a-1/output", path)
    return "shared-folder", path


def _directory_is_a_link_to_another(layout):
    path = layout.instance("c-1").root
    os.rename(path, path + "-gone")
    os.symlink("a-1", path)
    return "shared-folder", path


def _two_outputs_linked_to_one_folder_elsewhere(layout):
    elsewhere = os.path.join(layout.data, "outputs")
    os.makedirs(os.path.join(elsewhere, "all"))
    for instance_id, target in (("a-1", "../../outputs"), ("c-1", "../../outputs/all")):
        path = layout.instance(instance_id).output
        os.rmdir(path)
        os.symlink(target, path)
    return "shared-folder", layout.instance("c-1").output


def _real_directory_where_link_belongs(layout):
    path = layout.instance("a-1").input
    os.unlink(path)
    os.makedirs(os.path.join(path, "photos"))
    return "link-expected", path


def _wrong_link(layout):
    path = layout.instance("a-1").models
    os.unlink(path)
    os.symlink("../../shared/input", path)
    return "wrong-link", path


def _escaping_link(layout):
    outside = os.path.join(os.path.dirname(layout.data), "outside")
    os.mkdir(outside)
    path = layout.instance("b-1").user
    os.rename(path, path + ".old")
    os.symlink(outside, path)
    return "escapes-root", path


def _broken_link(layout):
    path = layout.instance("c-1").temp
    os.rmdir(path)
    os.symlink("../nowhere", path)
    return "broken-link", path


def _missing_link(layout):
    path = layout.instance("b-1").models
    os.unlink(path)
    return "link-missing", path


def _empty_directory_where_link_belongs(layout):
    path = layout.instance("b-1").input
    os.unlink(path)
    os.mkdir(path)
    return "link-missing", path


def _orphaned_directory(layout):
    path = layout.instance("old-9").root
    os.makedirs(os.path.join(path, "output"))
    return "unregistered-directory", path


def _entry_without_directory(layout):
    path = layout.instance("c-1").root
    os.rename(path, os.path.join(os.path.dirname(layout.data), "c-1-elsewhere"))
    return "missing-instance-directory", path


def _not_an_instance_name(layout):
    path = os.path.join(layout.instances, "Backup_Copy")
    os.mkdir(path)
    return "invalid-data", path


def _same_port(layout):
    edit_registry(layout, lambda d: d["instances"]["c-1"].update(port=d["instances"]["a-1"]["port"]))
    return "port-conflict", layout.registry


def _same_gpu(layout):
    def change(document):
        document["instances"]["a-1"]["gpus"] = ["1"]
        document["instances"]["b-1"]["gpus"] = ["0", "1"]
    edit_registry(layout, change)
    return "gpu-conflict", layout.registry


def _shared_database(layout):
    make_database(layout.instance("a-1").database)
    os.symlink(layout.instance("a-1").database, layout.instance("b-1").database)
    return "shared-database", layout.instance("b-1").database


def _hard_linked_database(layout):
    make_database(layout.instance("b-1").database)
    os.link(layout.instance("b-1").database, layout.instance("c-1").database)
    return "shared-database", layout.instance("c-1").database


def _damaged_registry(layout):
    with open(layout.registry, "w") as file:
        file.write("{not json")
    return "registry-damaged", layout.registry


PLANTED = [_output_into_other, _directory_is_a_link_to_another, _two_outputs_linked_to_one_folder_elsewhere, _real_directory_where_link_belongs, _wrong_link,
           _escaping_link, _broken_link, _missing_link, _empty_directory_where_link_belongs, _orphaned_directory,
           _entry_without_directory, _not_an_instance_name, _same_port, _same_gpu, _shared_database,
           _hard_linked_database, _damaged_registry]


@pytest.mark.parametrize("plant", PLANTED, ids=lambda f: f.__name__.strip("_"))
def test_each_planted_conflict_is_found_by_its_kind_and_exits_1(layout, plant):
    kind, path = plant(layout)
    result = check(layout)
    assert (kind, path) in kinds_at(result), [p.line() for p in result.problems]
    assert result.exit_code == 1
    assert all(problem.fix for problem in result.problems), [p.line() for p in result.problems if not p.fix]


def test_port_and_gpu_conflicts_are_reported_once_per_pair_with_the_command_that_fixes_them(layout):
    _same_port(layout)
    _same_gpu(layout)
    found = [p for p in check(layout).problems if p.kind in ("port-conflict", "gpu-conflict")]
    assert sorted((p.kind, p.message.split(":")[0]) for p in found) == [
        ("gpu-conflict", "instance 'b-1'"), ("port-conflict", "instance 'c-1'")]
    port = next(p for p in found if p.kind == "port-conflict")
    assert f"comfy-init instance delete c-1 --keep-data --data {layout.data} && comfy-init instance create c-1 --adopt" \
        in port.fix and "--port 8195" in port.fix


def test_a_damaged_registry_does_not_stop_the_tree_checks(layout):
    _damaged_registry(layout)
    _missing_link(layout)
    result = check(layout)
    damaged = next(p for p in result.problems if p.kind == "registry-damaged")
    assert "comfy-init registry recover" in damaged.fix
    assert ("link-missing", layout.instance("b-1").models) in kinds_at(result)


def test_a_database_in_the_comfyui_checkout_is_found(layout, tmp_path):
    app = tmp_path / "comfyui"
    (app / "user").mkdir(parents=True)
    assert check(layout, app_dir=str(app)).exit_code == 0
    make_database(app / "user" / "comfyui.db")
    result = check(layout, app_dir=str(app))
    assert kinds_at(result) == {("checkout-database", str(app / "user" / "comfyui.db"))}
    assert "mv " in result.problems[0].fix


def _puid_owning_the_tree(layout):
    """A uid that is not root and owns the instances' own folders (chowned when we are root)."""
    if os.geteuid() != 0:
        return os.geteuid()
    for instance_id in ("a-1", "b-1", "c-1"):
        for path in [layout.instance(instance_id).root, *layout.instance(instance_id).own_folders()]:
            os.chown(path, 12345, 12345)
    os.chown(layout.shared_input, 12345, 12345)
    return 12345


def test_a_folder_the_instances_uid_cannot_write_is_found_with_the_chown_that_fixes_it(layout):
    puid = _puid_owning_the_tree(layout)
    assert check(layout, puid=puid).problems == []
    stuck = os.path.join(layout.instance("b-1").user, "default")
    os.mkdir(stuck, 0o755)
    if os.geteuid() == 0:
        os.chown(stuck, 0, 0)  # made by root, as a `docker exec` as root would
    else:
        os.chmod(stuck, 0o555)
    result = check(layout, puid=puid)
    assert kinds_at(result) == {("not-writable", stuck)}
    assert f"chown -R {puid}:{puid} {stuck}" in result.problems[0].fix
    # Without --puid, the owner of each instance's directory is the uid judged: the same finding.
    assert kinds_at(check(layout)) == ({("not-writable", stuck)} if puid == 12345 or os.geteuid() else set())


# -- temporaries: only comfy-init's, only when provably left behind ------------------------------

def _temporaries(layout):
    """One of every temporary comfy-init makes, where it makes it."""
    a = layout.instance("a-1")
    snapshots = layout.snapshot_dir("a-1")
    os.makedirs(snapshots)
    os.makedirs(os.path.join(a.user, "default"))
    files = [os.path.join(layout.meta, ".instance-registry.json.tmp-41-9f3a0c1d"),
             os.path.join(layout.meta, ".instance-registry.json.bak.tmp-42-0011aabb"),
             os.path.join(snapshots, ".20261201T101404Z-3f2a9c1d.partial"),
             os.path.join(snapshots, ".20261201T101404Z-3f2a9c1d.db"),
             os.path.join(a.root, "..comfy-init-instance.tmp-7-deadbeef"),
             os.path.join(a.user, "default", ".comfy.settings.json.tmp-9-c0ffee00")]
    for path in files:
        with open(path, "wb") as file:
            file.write(b"half")
    link = a.models + ".comfy-init-link-77"
    os.symlink("../../shared/models", link)
    folders = [layout.template_building_dir("studio", "a1b2c3d4"), a.node_clone_dir("ComfyUI-Alpha", "0badf00d"),
               layout.restore_staging("a-1", "5eed1234")]
    for path in folders:
        os.makedirs(os.path.join(path, "inner"))
        with open(os.path.join(path, "inner", "kept.txt"), "w") as file:
            file.write("kept")
    return [make_old(p) for p in files + [link]], [make_old(p) for p in folders]


def test_every_kind_of_comfy_init_temporary_left_behind_is_found(layout):
    files, folders = _temporaries(layout)
    found = {p.path for p in check(layout).problems if p.kind == "stray-temporary"}
    assert found == set(files + folders)


def test_a_young_temporary_or_one_whose_writer_holds_its_lock_is_not_stray(layout):
    files, folders = _temporaries(layout)
    young = os.path.join(layout.meta, ".instance-registry.json.tmp-43-12345678")
    open(young, "w").close()
    with flock_held_elsewhere(layout.snapshot_lock("a-1")):
        found = {p.path for p in check(layout).problems if p.kind == "stray-temporary"}
    snapshot_temps = {p for p in files if "/backup-snapshots/" in p}
    assert found == set(files + folders) - snapshot_temps


def test_lookalikes_comfy_init_did_not_make_are_never_reported_or_touched(layout):
    a = layout.instance("a-1")
    lookalikes = [os.path.join(a.output, ".x.tmp-1-abcd"), os.path.join(a.user, "notes.tmp"),
                  os.path.join(layout.meta, "backup.partial"), os.path.join(a.custom_nodes, ".git-clone-tmp"),
                  os.path.join(layout.model_folder("loras"), ".lora.safetensors.tmp-3-abcdef12"),
                  os.path.join(layout.instances, ".restore-notes.txt"),
                  os.path.join(a.root, ".notes.txt.tmp-4-abcdef12"),
                  os.path.join(a.user, "default", ".workflow.json.tmp-5-abcdef12")]
    os.makedirs(os.path.join(a.user, "default"))
    for path in lookalikes:
        with open(path, "w") as file:
            file.write("mine")
        make_old(path)
    before = tree_state(layout.data)
    result = check(layout, fix=True)
    assert (result.exit_code, result.problems, result.data["fixed"]) == (0, [], [])
    assert tree_state(layout.data) == before


def test_temporaries_behind_a_link_are_not_comfy_inits_and_are_left_alone(layout, tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / ".ComfyUI-Alpha.cloning-0badf00d").mkdir(parents=True)
    make_old(outside / ".ComfyUI-Alpha.cloning-0badf00d")
    nodes = layout.instance("a-1").custom_nodes
    os.rmdir(nodes)
    os.symlink(outside, nodes)
    result = check(layout, fix=True)
    assert [p.kind for p in result.problems] == ["escapes-root"] and result.data["fixed"] == []
    assert (outside / ".ComfyUI-Alpha.cloning-0badf00d").is_dir()


def test_an_orphaned_link_under_instances_is_not_registered(layout):
    os.symlink("a-1", os.path.join(layout.instances, "d-1"))
    result = check(layout, fix=True)
    assert "d-1" not in Registry(layout).load()["instances"]
    assert ("unregistered-directory", layout.instance("d-1").root) in kinds_at(result)
    assert ("shared-folder", layout.instance("d-1").root) in kinds_at(result)


def test_a_temporary_whose_writer_takes_no_lock_is_reported_with_a_command_and_left(layout):
    path = os.path.join(layout.meta, ".compose.instances.yml.tmp-5-abcdef01")
    open(path, "w").close()
    make_old(path)
    result = check(layout, fix=True)
    assert kinds_at(result) == {("stray-temporary", path)} and f"`rm -- {path}`" in result.problems[0].fix
    assert os.path.exists(path) and result.data["fixed"] == []


# -- --fix: the safe fixes, each reported, and nothing else --------------------------------------

SAFE = [_missing_link, _empty_directory_where_link_belongs, _orphaned_directory]
UNSAFE = [_output_into_other, _real_directory_where_link_belongs, _broken_link, _wrong_link, _same_port,
          _same_gpu, _hard_linked_database, _not_an_instance_name]


def test_fix_does_the_safe_fixes_and_leaves_everything_else_exactly_as_it_was(layout):
    unsafe = {plant(layout) for plant in UNSAFE}
    safe = {plant(layout) for plant in SAFE}
    files, folders = _temporaries(layout)
    registry_before = Registry(layout).load()
    before = tree_state(layout.data)

    result = check(layout, fix=True)

    assert {(item["kind"], item["path"]) for item in result.data["fixed"]} == safe | {
        ("stray-temporary", path) for path in files + folders} | {("link-missing", layout.instance("old-9").models),
                                                                   ("link-missing", layout.instance("old-9").input)}
    assert kinds_at(result) == unsafe and result.exit_code == 1
    assert [line for line in result.lines if line.startswith("fixed: ")] == [
        f"fixed: {item['done']}" for item in result.data["fixed"]]
    # What was fixed:
    assert os.readlink(layout.instance("b-1").models) == "../../shared/models"
    assert os.readlink(layout.instance("b-1").input) == "../../shared/input"
    document = Registry(layout).load()
    assert document["instances"]["old-9"] == {"created_at": document["instances"]["old-9"]["created_at"],
                                             "claim_generation": 0}
    assert not any(os.path.lexists(path) for path in files + folders)
    trash = sorted(os.listdir(layout.trash))
    assert len(trash) == 3 and all(
        open(os.path.join(layout.trash, name, "inner", "kept.txt")).read() == "kept" for name in trash)
    # Nothing else changed: every entry of the tree but the fixed ones, the registry and the trash.
    changed = {os.path.relpath(p, layout.data) for p in files + folders} | {
        os.path.relpath(p, layout.data) for _, p in safe}
    after = tree_state(layout.data)

    def untouched(state):
        """Every entry but the fixed ones, the registry, lock files and trash; a folder's mtime only
        says that an entry in it came or went."""
        kept = {}
        for path, (content, *rest) in state.items():
            if any(path == c or path.startswith(c + "/") for c in changed) or path.startswith(
                    ("meta/instance-registry.json", "meta/trash", "meta/locks")) or path.endswith("/.lock"):
                continue  # a fix takes its writer's lock: lock files are made, never removed
            kept[path] = (content, *rest[:3], *rest[4:]) if content[0] == "dir" else (content, *rest)
        return kept

    assert untouched(after) == untouched(before)
    assert {k: v for k, v in document["instances"].items() if k != "old-9"} == registry_before["instances"]


def test_fix_leaves_a_running_instance_alone_and_says_why(layout):
    _missing_link(layout)
    with flock_held_elsewhere(layout.lock_path("b-1")):
        result = check(layout, fix=True)
    assert not os.path.lexists(layout.instance("b-1").models)
    assert kinds_at(result) == {("link-missing", layout.instance("b-1").models)}
    assert [item["problem"]["kind"] for item in result.data["not_fixed"]] == ["instance-held"]
    assert any(line.startswith("could not fix ") for line in result.lines)


def test_fix_on_a_clean_tree_changes_nothing(layout):
    before = tree_state(layout.data)
    result = check(layout, fix=True)
    assert (result.exit_code, result.data["fixed"]) == (0, [])
    assert tree_state(layout.data) == before


# -- the table: a checker from another package plugs in with one row ----------------------------

SEEN = []


def plugged_find(layout, instance_ids=None):
    from comfy_init.problems import Problem

    SEEN.append((layout.data, list(instance_ids)))
    return [Problem("failed", "planted by a plug-in", path=layout.data, fix="none")]


def test_a_checker_named_by_module_and_function_is_called_with_the_layout_and_ids(layout):
    SEEN.clear()
    table = CHECKERS + (Checker("plugged", "tests.ops.test_check:plugged_find"),)
    result = check(layout, checkers=table)
    assert SEEN == [(layout.data, ["a-1", "b-1", "c-1"])]
    assert kinds_at(result) == {("failed", layout.data)} and "plugged" in result.data["checks"]


# -- every fixer looks again right before it acts ------------------------------------------------

def test_a_temporary_whose_lock_is_taken_between_look_and_fix_is_left(layout):
    from comfy_init.errors import BusyError
    from comfy_init.ops.check import temps
    from comfy_init.ops.check.context import Context

    files, _ = _temporaries(layout)
    ctx = Context(layout)
    found = [p for p in temps.find_temps(ctx) if "/backup-snapshots/" in p.path]
    assert found
    with flock_held_elsewhere(layout.snapshot_lock("a-1")):
        for problem in found:
            with pytest.raises(BusyError):
                temps.fix_temp(ctx, problem)
    assert all(os.path.exists(p.path) for p in found)


def test_a_temporary_replaced_by_a_new_file_of_its_name_between_look_and_fix_is_left(layout):
    from comfy_init.ops.check import temps
    from comfy_init.ops.check.context import Context

    path = make_old_file(os.path.join(layout.meta, ".instance-registry.json.tmp-41-9f3a0c1d"))
    ctx = Context(layout)
    [problem] = temps.find_temps(ctx)
    os.unlink(path)
    make_old_file(path, b"a new writer's")
    assert temps.fix_temp(ctx, problem) is None
    assert open(path, "rb").read() == b"a new writer's"


def make_old_file(path, data=b"half"):
    with open(path, "wb") as file:
        file.write(data)
    return make_old(path)


def test_a_directory_marked_for_another_instance_is_not_registered(layout):
    root = layout.instance("x-1").root
    os.makedirs(root)
    with open(os.path.join(root, ".comfy-init-instance"), "w") as file:
        file.write("a-1\n")
    result = check(layout, fix=True)
    assert "x-1" not in Registry(layout).load()["instances"]
    assert [item["problem"]["kind"] for item in result.data["not_fixed"]] == ["shared-folder"]
    assert {("unregistered-directory", root), ("shared-folder", root)} <= kinds_at(result)


def plugged_fix(layout, problem):
    return f"fixed {problem.path} of {layout.data}"


def plugged_find_without_ids(layout):
    from comfy_init.problems import Problem

    return [Problem("failed", "found by a plug-in that takes the layout only", path=layout.meta, fix="none")]


def test_a_plugged_in_fixer_is_called_for_its_kinds_only_and_reported(layout):
    table = CHECKERS + (Checker("plugged", "tests.ops.test_check:plugged_find_without_ids",
                                "tests.ops.test_check:plugged_fix", fixes=("failed",)),)
    result = check(layout, fix=True, checkers=table)
    assert result.data["fixed"] == [{"kind": "failed", "path": layout.meta, "done": f"fixed {layout.meta} of {layout.data}"}]
    assert kinds_at(result) == {("failed", layout.meta)}  # it fixed nothing really: found again
