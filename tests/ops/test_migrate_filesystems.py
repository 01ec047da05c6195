"""Migrations that cannot rename: an old tree on another filesystem (a tmpfs mounted by the test),
a target too small for it, and files the migrating user cannot read."""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from comfy_init.layout import Layout
from comfy_init.ops.migrate.migration import migrate, rollback
from tests.support.oldtrees import fill, manifest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs and changes users: needs root")


@pytest.fixture
def mount_tmpfs():
    mounted = []

    def mount(path, size):
        os.makedirs(path, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)
        return str(path)
    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def _without_inodes(entries):
    """Across filesystems every inode is new: links are then judged by their text alone."""
    return {path: (mode, uid, gid, content[:2] if content[0] == "link" else content)
            for path, (mode, uid, gid, _inode, content) in entries.items()}


def test_old_tree_on_another_filesystem_is_copied_verified_then_removed(tmp_path, mount_tmpfs):
    old = mount_tmpfs(tmp_path / "old-disk", "64m")
    fill(old, sparse=False)
    with open(f"{old}/models/checkpoints/holes.safetensors", "wb") as file:
        file.truncate(8 << 20)
        file.write(b"header")
    before = {name: _without_inodes(manifest(f"{old}/{name}")) for name in ("models", "user", "output")}
    layout = Layout(str(tmp_path / "data"))
    os.makedirs(layout.data)
    plan = migrate(layout, from_path=old, instance_id="main", dry_run=True)
    assert plan.data["plan"]["copy_bytes"] > 8 << 20 and plan.data["plan"]["folders"]["user"]["how"] == "copy"
    result = migrate(layout, from_path=old, instance_id="main")
    assert result.exit_code == 0, result.problems
    assert result.data["verified"]["difference_count"] == 0
    new = {"models": layout.shared_models, "user": layout.instance("main").user,
           "output": layout.instance("main").output}
    for name, place in new.items():
        after = _without_inodes(manifest(place))
        assert {path: after.get(path) for path in before[name]} == before[name], name
        assert os.path.realpath(f"{old}/{name}") == os.path.realpath(place)
    assert os.path.realpath(f"{layout.shared_models}/vae/alias.safetensors") == os.path.realpath(
        f"{layout.shared_models}/checkpoints/sd15.safetensors")
    copied = f"{layout.shared_models}/checkpoints/holes.safetensors"
    assert os.stat(copied).st_blocks * 512 <= 1 << 20, "holes stay holes (a copy writes 1 MiB chunks that hold data)"
    output = layout.instance("main").output
    assert os.stat(f"{output}/hard-link.png").st_ino == os.stat(f"{output}/ComfyUI_00001_.png").st_ino
    assert not any(".comfy-init-copying-" in name for name in os.listdir(layout.shared_models))
    # Back across: the old disk holds its tree again.
    assert rollback(layout).exit_code == 0
    for name in before:
        assert _without_inodes(manifest(f"{old}/{name}")) == before[name]


def test_a_target_too_small_is_refused_before_anything_moves(tmp_path, mount_tmpfs):
    data = mount_tmpfs(tmp_path / "small-data", "4m")
    old = tmp_path / "old"
    fill(str(old))  # a 1 GiB (sparse) model: more than the target holds
    before = manifest(str(old))
    result = migrate(Layout(data), from_path=str(old), instance_id="main")
    assert result.exit_code == 73
    assert "free" in result.problems[0].message and result.problems[0].path == data
    assert manifest(str(old)) == before
    assert not os.path.lexists(f"{data}/shared") and not os.path.lexists(f"{data}/instances")
    assert not os.path.lexists(Layout(data).migration_journal)


def test_unreadable_files_are_moved_and_reported(tmp_path):
    """As a user who cannot read output/private.png (mode 000, owned by that user)."""
    scratch = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        data = os.path.join(scratch, "data")
        fill(f"{data}/comfy", sparse=False)
        subprocess.run(["chown", "-R", "1000:1000", scratch], check=True)
        report = os.path.join(scratch, "report.json")
        child = os.fork()
        if child == 0:
            try:
                os.setgroups([])
                os.setgid(1000)
                os.setuid(1000)
                result = migrate(Layout(data), instance_id="main")
                with open(report, "w") as file:
                    json.dump({"code": result.exit_code, "lines": result.lines,
                               "problems": [p.message for p in result.problems],
                               "unreadable": (result.data or {}).get("plan", {}).get("unreadable")}, file)
            finally:
                os._exit(0)
        os.waitpid(child, 0)
        with open(report) as file:
            outcome = json.load(file)
        assert outcome["code"] == 0, outcome["problems"]
        assert outcome["unreadable"] == [f"{data}/comfy/output/private.png"]
        assert any("unreadable for this user" in line for line in outcome["lines"])
        moved = f"{data}/instances/main/output/private.png"
        assert os.stat(moved).st_mode & 0o777 == 0 and os.path.getsize(moved) == len(b"secret")
    finally:
        shutil.rmtree(scratch)


def test_kills_during_a_copy_across_filesystems_then_resume_or_roll_back(tmp_path, mount_tmpfs):
    """After every journal record and at random instants (mid-file copies among them), on an old
    tree that must be copied: the same command finishes, or --rollback restores it."""
    import random
    import signal
    import time

    from comfy_init.store import migration_journal as journal_module
    from tests.ops.test_migrate_kills import _in_child

    old_disk = mount_tmpfs(tmp_path / "old-disk", "256m")
    rng, runs, partial = random.Random(7), 0, 0
    for attempt in range(60):
        old, data = f"{old_disk}/t{attempt}", str(tmp_path / f"data{attempt}")
        fill(old, sparse=False)
        with open(f"{old}/models/checkpoints/dense.safetensors", "wb") as file:
            file.write(os.urandom(3 << 20))  # long enough to be killed inside it
        os.makedirs(data)
        layout = Layout(data)
        before = {name: _without_inodes(manifest(f"{old}/{name}")) for name in ("models", "user", "output")}
        kill_at = attempt + 1 if attempt < 30 else None
        child = _in_child(lambda: migrate(layout, from_path=old, instance_id="main"), kill_at)
        if kill_at is None:
            time.sleep(rng.uniform(0, 0.4))
            os.kill(child, signal.SIGKILL)
        _, status = os.waitpid(child, 0)
        runs += os.WIFSIGNALED(status)
        partial += any(".comfy-init-copying-" in name for _, dirs, _ in os.walk(data) for name in dirs)
        if attempt % 2 == 0:
            result = migrate(layout, from_path=old, instance_id="main")
            assert result.exit_code == 0, result.problems
            after = _without_inodes(manifest(layout.shared_models))
            assert {path: after.get(path) for path in before["models"]} == before["models"]
        elif journal_module.Journal.read(layout.migration_journal) is not None:
            assert rollback(layout).exit_code == 0
        if attempt % 2 == 1:
            for name in before:
                assert _without_inodes(manifest(f"{old}/{name}")) == before[name], (attempt, name)
        shutil.rmtree(old, ignore_errors=True)
    assert runs >= 30
    assert partial >= 1, "some kill must land inside a copy (a half-built .comfy-init-copying tree)"
