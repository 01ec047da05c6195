"""Hostile review of `comfy-init migrate`: each test is one finding (it fails on the code under review).

Cross-filesystem cases put the old tree on /dev/shm (tmpfs) and the data tree under tmp_path
(the disk), so no mount is needed."""

import json
import os
import signal
import subprocess
import sys
import tempfile

import pytest
from click.testing import CliRunner

from comfy_init.cli.main import cli
from comfy_init.layout import Layout
from comfy_init.ops.migrate import copying, steps
from comfy_init.store import migration_journal as journal_module
from comfy_init.store.migration_journal import Journal
from comfy_init.ops.migrate.migration import migrate, rollback
from tests.support.oldtrees import build, fill


@pytest.fixture
def shm(tmp_path):
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    path = tempfile.mkdtemp(dir="/dev/shm", prefix="migrate-hostile-")
    try:
        if os.stat(path).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same filesystem as tmp_path")
        yield path
    finally:
        subprocess.run(["rm", "-rf", path], check=False)  # shutil.rmtree recurses: too deep for it


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(data)


def _light(data):
    """The compat tree of tests/support/oldtrees without its 1 GiB sparse model (hashing it is slow)."""
    root = os.path.join(data, "comfy")
    fill(root, sparse=False)
    return root


def _in_child(work):
    child = os.fork()
    if child == 0:
        try:
            work()
        finally:
            os._exit(0)
    _, status = os.waitpid(child, 0)
    return status


# --- 1. rollback after the migrated instance was used: never completes, tree stuck -------------------

def test_rollback_after_the_instance_wrote_a_file_completes_and_keeps_it(tmp_path):
    layout = Layout(str(tmp_path))
    root = _light(str(tmp_path))
    assert migrate(layout, instance_id="main").exit_code == 0
    _write(os.path.join(layout.instance("main").output, "made-after.png"), b"new work")
    back = rollback(layout)
    # the new file is back at the old place (it was moved with the folder) ...
    assert os.path.isfile(f"{root}/output/made-after.png")
    # ... and the rollback finished: not a journal stuck in "rolling-back" that blocks every later migrate
    state = Journal.read(layout.migration_journal)
    assert back.exit_code == 0, back.problems
    assert state is None or state.state != "rolling-back"


# --- 2. a file appearing after the walk: forward verify fails forever, rollback too ------------------

def test_file_created_during_migration_does_not_wedge_migrate_and_rollback(tmp_path):
    layout = Layout(str(tmp_path))
    root = _light(str(tmp_path))

    def created_after_plan(count):
        if count == 1:
            _write(f"{root}/output/late.png", b"written while migrating")
    journal_module.after_record = created_after_plan
    try:
        first = migrate(layout, instance_id="main")
    finally:
        journal_module.after_record = None
    again = migrate(layout, instance_id="main")
    back = rollback(layout)
    assert first.exit_code == 0 or again.exit_code == 0 or back.exit_code == 0, \
        (first.problems, again.problems, back.problems)


# --- 3. across filesystems: an empty directory copied, then a kill before the `end` record ----------

def test_copy_step_of_an_empty_directory_is_idempotent(tmp_path, shm):
    src, dst = os.path.join(shm, "empty"), str(tmp_path / "dst")
    os.mkdir(src)
    os.mkdir(dst)  # the empty folder the instance tree puts there
    step = {"step": "copy", "src": src, "dst": dst, "ino": os.lstat(src).st_ino, "dir": True,
            "parents": False, "replaces_empty": True, "token": "0123456789ab"}
    steps.do_copy(step)
    steps.do_copy(step)  # the same step again, as after a kill before its `end` record


def test_kill_after_copying_an_empty_custom_nodes_resumes(tmp_path, shm):
    old = os.path.join(shm, "ComfyUI")
    _write(f"{old}/models/checkpoints/a.safetensors", b"a")
    os.makedirs(f"{old}/custom_nodes")  # empty, as on a fresh install
    layout = Layout(str(tmp_path / "data"))
    os.makedirs(layout.data)
    real_append = Journal.append

    def append(self, kind, **fields):
        step = self.plan["steps"][fields.get("step_index", 0)] if kind == "end" else None
        if step is not None and step["step"] == "copy" and step["src"].endswith("/custom_nodes"):
            os.kill(os.getpid(), signal.SIGKILL)  # the copy is done, its `end` is not written yet
        return real_append(self, kind, **fields)

    def work():
        Journal.append = append
        migrate(layout, from_path=old, instance_id="main")
    _in_child(work)
    Journal.append = real_append
    resumed = migrate(layout, from_path=old, instance_id="main")
    assert resumed.exit_code == 0, resumed.problems


# --- 4. across filesystems: a kill while the source is being removed ----------------------------------

def test_kill_while_removing_the_copied_source_resumes(tmp_path, shm):
    old = os.path.join(shm, "ComfyUI")
    for number in range(6):
        _write(f"{old}/user/default/workflows/flow{number}.json", b"{}" * (number + 1))
    _write(f"{old}/models/checkpoints/a.safetensors", b"a")
    layout = Layout(str(tmp_path / "data"))
    os.makedirs(layout.data)
    real_unlink = os.unlink

    def work():
        removed = []

        def unlink(path, *args, **kwargs):
            if "/workflows/" in str(path) and str(path).startswith(old):
                removed.append(path)
                if len(removed) == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_unlink(path, *args, **kwargs)
        os.unlink = unlink
        migrate(layout, from_path=old, instance_id="main")
    _in_child(work)
    os.unlink = real_unlink
    resumed = migrate(layout, from_path=old, instance_id="main")
    back = None if resumed.exit_code == 0 else rollback(layout)
    assert resumed.exit_code == 0 or back.exit_code == 0, (resumed.problems, back and back.problems)


# --- 5. across filesystems: a file changed after it was copied is unlinked with its new content -------

def test_a_source_file_changed_after_its_copy_is_not_deleted(tmp_path, shm, monkeypatch):
    old = os.path.join(shm, "ComfyUI")
    _write(f"{old}/models/checkpoints/a.safetensors", b"a")
    _write(f"{old}/user/default/comfy.settings.json", b'{"v": 1}')
    layout = Layout(str(tmp_path / "data"))
    os.makedirs(layout.data)
    real_verify = copying.TreeCopy.verify

    def verify(self):
        real_verify(self)
        target = os.path.join(self.source, "default", "comfy.settings.json")
        if os.path.exists(target):
            with open(target, "ab") as file:  # a writer that is not ComfyUI (an editor, a sync tool)
                file.write(b' {"v": 2, "edited": "during the copy"}')
    monkeypatch.setattr(copying.TreeCopy, "verify", verify)
    migrate(layout, from_path=old, instance_id="main")
    places = [f"{old}/user/default/comfy.settings.json",
              os.path.join(layout.instance("main").user, "default", "comfy.settings.json")]
    contents = [open(path, "rb").read() for path in places if os.path.exists(path)]
    assert any(b"edited" in content for content in contents), contents


# --- 6. across filesystems: hard links between merged model folders become two copies ----------------

def test_hard_links_across_model_folders_stay_hard_links_across_filesystems(tmp_path, shm):
    old = os.path.join(shm, "ComfyUI")
    _write(f"{old}/models/checkpoints/model.safetensors", b"m" * 4096)
    os.makedirs(f"{old}/models/unet")
    os.link(f"{old}/models/checkpoints/model.safetensors", f"{old}/models/unet/model.safetensors")
    layout = Layout(str(tmp_path / "data"))
    os.makedirs(layout.data)
    assert migrate(layout, from_path=old, instance_id="main").exit_code == 0
    one = os.lstat(f"{layout.shared_models}/checkpoints/model.safetensors")
    two = os.lstat(f"{layout.shared_models}/unet/model.safetensors")
    assert one.st_ino == two.st_ino  # one model on disk, as before: not twice the space


# --- 7. --from through a symlink: compatibility links point nowhere -----------------------------------

def test_from_through_a_symlink_leaves_working_compat_links(tmp_path):
    real = tmp_path / "opt" / "ComfyUI"
    fill(str(real), unicode_names=False, sparse=False)
    _write(f"{real}/main.py", b"")
    os.symlink(str(real), str(tmp_path / "comfy-link"))
    layout = Layout(str(tmp_path / "srv" / "data"))
    os.makedirs(layout.data)
    result = migrate(layout, from_path=str(tmp_path / "comfy-link"), instance_id="main")
    assert result.exit_code == 0, result.problems
    assert os.path.realpath(f"{real}/models") == os.path.realpath(layout.shared_models)
    assert os.path.realpath(f"{real}/custom_nodes") == os.path.realpath(layout.instance("main").custom_nodes)


# --- 8. a journal whose plan line is damaged: traceback --------------------------------------------

@pytest.mark.parametrize("content", [b"", b"{not json\n", b'{"record":"begin","step_index":0}\n'])
def test_a_damaged_journal_gets_one_clear_line(tmp_path, content):
    _light(str(tmp_path))
    layout = Layout(str(tmp_path))
    os.makedirs(layout.meta, exist_ok=True)
    with open(layout.migration_journal, "wb") as file:
        file.write(content)
    done = CliRunner().invoke(cli, ["migrate", "--data", str(tmp_path), "--yes"])
    assert done.exception is None or isinstance(done.exception, SystemExit), repr(done.exception)
    assert "Traceback" not in done.output and layout.migration_journal in done.output
    back = CliRunner().invoke(cli, ["migrate", "--rollback", "--data", str(tmp_path), "--yes"])
    assert back.exception is None or isinstance(back.exception, SystemExit), repr(back.exception)


# --- 10. a journal with `finished` then an interrupted rollback reads as "finished" ------------------

def test_an_interrupted_rollback_of_a_finished_migration_is_seen_as_unfinished(tmp_path):
    from comfy_init.ops.migrate.migration import unfinished

    layout = Layout(str(tmp_path))
    _light(str(tmp_path))
    assert migrate(layout, instance_id="main").exit_code == 0

    def work():
        undone = []

        def kill_after_two_undos(count):
            if Journal.read(layout.migration_journal).records[-1]["record"] == "undo-end":
                undone.append(count)
                if len(undone) == 2:
                    os.kill(os.getpid(), signal.SIGKILL)
        journal_module.after_record = kill_after_two_undos
        rollback(layout)
    _in_child(work)
    journal = Journal.read(layout.migration_journal)
    assert journal.state == "rolling-back", journal.state
    assert unfinished(layout) is not None  # `comfy-init check` must say a rollback stopped halfway
    forward = migrate(layout, instance_id="main")  # must say "finish it: --rollback", not start a new migration
    assert forward.exit_code != 0


def test_a_killed_rollback_then_migrate_then_rollback_brings_the_models_back(tmp_path):
    layout = Layout(str(tmp_path))
    root = _light(str(tmp_path))
    assert migrate(layout, instance_id="main").exit_code == 0

    def work():
        def kill_after_models_link_removed(count):
            record = Journal.read(layout.migration_journal).records[-1]
            if record["record"] == "undo-end":
                step = Journal.read(layout.migration_journal).plan["steps"][record["step_index"]]
                if step["step"] == "compat-link" and step["path"].endswith("/models"):
                    os.kill(os.getpid(), signal.SIGKILL)
        journal_module.after_record = kill_after_models_link_removed
        rollback(layout)
    _in_child(work)
    migrate(layout, instance_id="main")   # the user reruns "the same command"
    back = rollback(layout)               # then asks for the old layout
    assert back.exit_code == 0, back.problems
    # the old layout has its models again (they are left in shared/models, and comfy/models is gone)
    assert os.path.isfile(f"{root}/models/checkpoints/sd15.safetensors"), os.listdir(root)


# --- 11. the "same file" decided at plan time: the old copy is parked in the trash even when the
#         kept one changed before the step ran (another instance writes shared/models meanwhile) --------

def test_a_duplicate_is_parked_only_if_it_still_equals_the_kept_copy(tmp_path):
    layout = Layout(str(tmp_path))
    root = _light(str(tmp_path))
    kept = os.path.join(layout.shared_models, "checkpoints", "sd15.safetensors")
    _write(kept, b"model-bytes" * 100)  # the same file: the plan parks the incoming one

    def other_instance_overwrites(count):
        if count == 1:
            _write(kept, b"another model under the same name")
    journal_module.after_record = other_instance_overwrites
    try:
        migrate(layout, instance_id="main")
    finally:
        journal_module.after_record = None
    outside_trash = []
    for directory, _, files in os.walk(str(tmp_path)):
        if directory.startswith(layout.trash):
            continue
        for name in files:
            if os.path.islink(os.path.join(directory, name)):
                continue
            with open(os.path.join(directory, name), "rb") as file:
                outside_trash.append(file.read())
    # `comfy-init instance purge` empties meta/trash: the old model's only copy must not be there
    assert b"model-bytes" * 100 in outside_trash


# --- 12. `--rollback --dry-run` rolls back, without even asking ----------------------------------------

def test_rollback_with_dry_run_changes_nothing(tmp_path):
    layout = Layout(str(tmp_path))
    root = _light(str(tmp_path))
    assert migrate(layout, instance_id="main").exit_code == 0
    CliRunner().invoke(cli, ["migrate", "--rollback", "--dry-run", "--data", str(tmp_path)])
    assert os.path.islink(f"{root}/models"), "a dry run rolled the migration back"
    assert Journal.read(layout.migration_journal).state == "finished"


# --- 13. a tree deeper than Python's recursion limit, on another filesystem: traceback -----------------

def test_a_deep_tree_across_filesystems_gets_no_traceback(tmp_path, shm):
    old = os.path.join(shm, "ComfyUI")
    _write(f"{old}/models/checkpoints/a.safetensors", b"a")
    subprocess.run(["mkdir", "-p", old + "/custom_nodes" + "/d" * 1100], check=True)
    data = tmp_path / "data"
    data.mkdir()
    try:
        done = subprocess.run([sys.executable, "-m", "comfy_init", "migrate", "--data", str(data), "--from", old,
                               "--yes"], capture_output=True)
        assert b"Traceback" not in done.stderr, done.stderr[-600:]
        assert done.returncode == 0, done.stderr[-600:]
    finally:
        subprocess.run(["rm", "-rf", str(data)], check=False)  # pytest's cleanup recurses: too deep for it


# --- 14. a rerun after an interruption with another --to-instance silently migrates to the old one -----

def test_resume_with_another_to_instance_says_so(tmp_path):
    layout = Layout(str(tmp_path))
    _light(str(tmp_path))

    def work():
        journal_module.after_record = lambda count: os.kill(os.getpid(), signal.SIGKILL) if count == 4 else None
        migrate(layout, instance_id="main")
    _in_child(work)
    again = migrate(layout, instance_id="studio")
    # the user asked for "studio": refuse (naming --to-instance, 'studio' and the recorded 'main'), never
    # quietly finish a migration to "main"
    assert again.exit_code != 0
    assert "studio" in " ".join(str(problem) for problem in again.problems)


# --- 15. a migrated folder replaced by a restore (new inodes): the rollback can never finish ----------

def test_rollback_after_output_was_restored_or_replaced_can_finish(tmp_path):
    layout = Layout(str(tmp_path))
    root = _light(str(tmp_path))
    assert migrate(layout, instance_id="main").exit_code == 0
    output = layout.instance("main").output
    os.rename(output, output + ".old")  # what a restore does: the same files, in a new directory
    subprocess.run(["cp", "-a", output + ".old", output], check=True)
    subprocess.run(["rm", "-rf", output + ".old"], check=True)
    first = rollback(layout)
    second = rollback(layout)
    # the rollback must be able to end (reporting what it could not put back); now it says "the tree
    # changed" forever (and `migrate` only starts a second migration over the half-rolled-back tree,
    # see finding 10): only editing meta/migration-journal.jsonl by hand gets out
    assert 0 in (first.exit_code, second.exit_code), (first.problems, second.problems)
    assert os.path.isfile(f"{root}/output/ComfyUI_00001_.png") or os.path.isfile(f"{output}/ComfyUI_00001_.png")


# --- 16. the manifest lost after an interruption: the tree is back, the journal is stuck for good ---

def test_a_rollback_without_the_manifest_does_not_wedge_the_tree(tmp_path):
    layout = Layout(str(tmp_path))
    _light(str(tmp_path))

    def work():
        journal_module.after_record = lambda count: os.kill(os.getpid(), signal.SIGKILL) if count == 6 else None
        migrate(layout, instance_id="main")
    _in_child(work)
    os.unlink(layout.migration_manifest)
    back = rollback(layout)
    again = migrate(layout, instance_id="main")
    assert back.exit_code == 0 or again.exit_code == 0, (back.problems, again.problems)


# --- 17. messages point to a section docs/migration.md does not have -------------------------------

def test_the_recovering_section_the_messages_cite_exists():
    import comfy_init.ops.migrate.migration as module

    with open(os.path.join(os.path.dirname(module.__file__), "..", "..", "..", "docs", "migration.md")) as file:
        headings = [line for line in file if line.startswith("#")]
    assert any("Recovering" in line for line in headings), headings


# --- 18. a link to a model that is a duplicate is rewritten to point INTO meta/trash ------------------

def test_a_link_to_a_parked_duplicate_points_at_the_kept_copy_not_the_trash(tmp_path):
    layout = Layout(str(tmp_path))
    root = _light(str(tmp_path))  # models/vae/alias.safetensors -> ../checkpoints/sd15.safetensors
    kept = os.path.join(layout.shared_models, "checkpoints", "sd15.safetensors")
    _write(kept, b"model-bytes" * 100)  # the same model is already shared: the incoming one is parked
    assert migrate(layout, instance_id="main").exit_code == 0
    alias = os.path.join(layout.shared_models, "vae", "alias.safetensors")
    assert not os.path.realpath(alias).startswith(layout.trash + "/"), os.readlink(alias)
    assert os.path.realpath(alias) == os.path.realpath(kept)


# --- 19. after a kill mid-migration, the old compose (restart: unless-stopped) boots compat mode on the
#         half-moved tree: it creates an EMPTY comfy/user (fresh database) and starts; nothing refuses ----

def test_a_boot_on_a_half_migrated_tree_is_refused(tmp_path):
    from tests.support.processes import COMFY_INIT
    from tests.support.standin import STANDIN_DIR

    layout = Layout(str(tmp_path))
    _light(str(tmp_path))

    def work():
        def kill_after_user_moved(count):
            journal = Journal.read(layout.migration_journal)
            record = journal.records[-1]
            if record["record"] == "end":
                step = journal.plan["steps"][record["step_index"]]
                if step["step"] == "move" and step["src"].endswith("/comfy/user"):
                    os.kill(os.getpid(), signal.SIGKILL)
        journal_module.after_record = kill_after_user_moved
        migrate(layout, instance_id="main")
    _in_child(work)
    env = {"PATH": os.environ["PATH"], "COMFY_DATA_DIRECTORY": str(tmp_path), "COMFY_APP_DIRECTORY": str(STANDIN_DIR),
           "COMFY_DEVICE": "cpu"}
    for extra in ({}, {"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "main"}):
        boot = subprocess.run(COMFY_INIT + ["--dry-run"], env=dict(env, **extra), capture_output=True, text=True,
                              timeout=60)
        assert boot.returncode != 0 and "migration-journal" in boot.stderr, (extra, boot.stdout[-800:])


# --- 20. a user's entry named `<destination>.comfy-init-copying` is removed unverified ---------------

def test_an_existing_entry_named_like_the_copy_scratch_is_never_removed(tmp_path, shm):
    old = os.path.join(shm, "ComfyUI")
    _write(f"{old}/models/checkpoints/m.safetensors", b"incoming")
    layout = Layout(str(tmp_path / "data"))
    theirs = os.path.join(layout.shared_models, "checkpoints", "m.safetensors.comfy-init-copying")
    _write(theirs, b"a user's file, in the shared tree before the migration")
    migrate(layout, from_path=old, instance_id="main")
    assert os.path.exists(theirs) or any(
        "m.safetensors.comfy-init-copying" in name for _, _, names in os.walk(layout.data) for name in names)


# --- 21. a database conflict splits the old database from its WAL: its last transactions are lost ---

def test_a_renamed_database_keeps_its_wal(tmp_path):
    import sqlite3

    layout = Layout(str(tmp_path))
    root = _light(str(tmp_path))
    os.unlink(f"{root}/user/comfyui.db")
    database = f"{root}/user/comfyui.db"

    def leave_a_wal():  # a ComfyUI killed (docker kill) before SQLite checkpointed
        connection = sqlite3.connect(database)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA wal_autocheckpoint=0")
        connection.execute("CREATE TABLE t (x)")
        connection.execute("INSERT INTO t VALUES ('the last job')")
        connection.commit()
        os._exit(0)
    _in_child(leave_a_wal)
    assert os.path.getsize(database + "-wal") > 0
    # the instance already exists with a database of its own (the user tried multi-instance first)
    instance_db = os.path.join(layout.instance("main").user, "comfyui.db")
    os.makedirs(os.path.dirname(instance_db))
    sqlite3.connect(instance_db).execute("CREATE TABLE other (y)").connection.close()
    result = migrate(layout, instance_id="main")
    assert result.exit_code == 0, result.problems
    renamed = [item["to"] for item in result.data["plan"]["renamed"] if item["path"] == database]
    assert renamed, result.data["plan"]["renamed"]
    with sqlite3.connect(renamed[0]) as connection:
        assert connection.execute("SELECT x FROM t").fetchall() == [("the last job",)]


# --- 22. an old folder that is itself a mount point (output/ on its own disk): copied, emptied, then
#         rmdir(mount point) fails EBUSY; after that both `migrate` and `--rollback` say "differ" forever ---

@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: needs root")
def test_an_old_folder_that_is_a_mount_point_is_refused_in_the_plan(tmp_path):
    layout = Layout(str(tmp_path))
    root = _light(str(tmp_path))
    os.rename(f"{root}/output", f"{tmp_path}/output.before")
    os.mkdir(f"{root}/output")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", f"{root}/output"], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        subprocess.run(["cp", "-a", f"{tmp_path}/output.before/.", f"{root}/output/"], check=True)
        plan = migrate(layout, instance_id="main", dry_run=True)
        run = migrate(layout, instance_id="main")
        if run.exit_code != 0 and Journal.read(layout.migration_journal) is not None:
            again, back = migrate(layout, instance_id="main"), rollback(layout)
            assert 0 in (again.exit_code, back.exit_code), (run.problems, again.problems, back.problems)
        # best: the plan names the mount point and says to mount the disk at instances/main/output instead
        assert plan.problems, "the dry run said nothing about the mount point"
    finally:
        subprocess.run(["umount", "-l", f"{root}/output"], check=False)


# --- 23. old tree and data tree on one disk but two mounts (two `docker run -v` binds): st_dev is the
#         same, the plan says "rename", every rename fails EXDEV: the migration can never run ----------

@pytest.mark.skipif(os.geteuid() != 0, reason="bind-mounts: needs root")
def test_two_bind_mounts_of_one_disk_migrate(tmp_path):
    fill(str(tmp_path / "src"), sparse=False)
    (tmp_path / "old").mkdir()
    (tmp_path / "data").mkdir()
    mounted = subprocess.run(["mount", "--bind", str(tmp_path / "src"), str(tmp_path / "old")], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        layout = Layout(str(tmp_path / "data"))
        result = migrate(layout, from_path=str(tmp_path / "old"), instance_id="main")
        # a copy (with its free-space check) where rename(2) says EXDEV, or a refusal in the plan
        assert result.exit_code == 0 or (Journal.read(layout.migration_journal) is None), result.problems
    finally:
        subprocess.run(["umount", "-l", str(tmp_path / "old")], check=False)


# --- 24. `instance delete` + `instance purge` of the instance an interrupted migration is filling ------

def test_instance_delete_is_refused_while_a_migration_into_it_is_unfinished(tmp_path):
    layout = Layout(str(tmp_path))
    _light(str(tmp_path))

    def work():
        def kill_after_output_moved(count):
            journal = Journal.read(layout.migration_journal)
            record = journal.records[-1]
            if record["record"] == "end":
                step = journal.plan["steps"][record["step_index"]]
                if step["step"] == "move" and step["src"].endswith("/comfy/output"):
                    os.kill(os.getpid(), signal.SIGKILL)
        journal_module.after_record = kill_after_output_moved
        migrate(layout, instance_id="main")
    _in_child(work)
    runner = CliRunner()
    deleted = runner.invoke(cli, ["instance", "delete", "main", "--yes", "--data", str(tmp_path)])
    if deleted.exit_code == 0:
        runner.invoke(cli, ["instance", "purge", "--yes", "--data", str(tmp_path)])
    found = [name for _, _, names in os.walk(str(tmp_path)) for name in names]
    assert "ComfyUI_00001_.png" in found, deleted.output  # the old tree's only copy of its outputs


# --- 25. unclear refusals ------------------------------------------------------------------------------

def test_an_instance_folder_that_is_a_file_is_named_with_a_fix(tmp_path):
    _light(str(tmp_path))
    os.makedirs(tmp_path / "instances")
    (tmp_path / "instances" / "main").write_text("x")
    result = migrate(Layout(str(tmp_path)), instance_id="main", dry_run=True)
    text = " ".join(str(problem) for problem in result.problems)
    # now: "instances/main/custom_nodes: cannot migrate: Not a directory" (exit 74, an I/O error, no fix)
    assert result.exit_code == 65 and f"{tmp_path}/instances/main:" in text, text


def test_shared_models_as_a_link_to_a_directory_is_not_called_not_a_directory(tmp_path):
    _light(str(tmp_path))
    disk = tmp_path / "big-disk" / "models"
    disk.mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    os.symlink(str(disk), str(tmp_path / "shared" / "models"))
    result = migrate(Layout(str(tmp_path)), instance_id="main", dry_run=True)
    text = " ".join(str(problem) for problem in result.problems)
    # a link to a directory (models on another disk) is common: merge through it, or say "is a link"
    assert result.exit_code == 0 or "is not a directory" not in text, text
