"""comfy_init.store.files and .locks: atomic replace, .bak, errors, single-file bind mounts, flock."""

import contextlib
import errno
import fcntl
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
from tests.support.registry_data import flock_held_elsewhere, instance, registry_at, temp_files

from comfy_init.errors import BusyError, ConfigError, IOFailure
from comfy_init.store import locks
from comfy_init.store.files import clean_stale_temps, write_atomic
from comfy_init.store.locks import hold as lock_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_write_creates_and_replaces(tmp_path):
    target = tmp_path / "f.json"
    write_atomic(target, b"one")
    assert read(target) == b"one"
    inode = os.stat(target).st_ino
    write_atomic(str(target), b"two")
    assert read(target) == b"two"
    assert os.stat(target).st_ino != inode  # replaced, not rewritten
    assert os.listdir(tmp_path) == ["f.json"]


def test_backup_is_the_previous_version(tmp_path):
    target, backup = tmp_path / "f", tmp_path / "f.bak"
    write_atomic(target, b"one", backup=backup)
    assert not backup.exists()  # nothing to back up yet
    write_atomic(target, b"two", backup=backup)
    assert read(backup) == b"one"
    write_atomic(target, b"three", backup=backup)
    assert read(backup) == b"two" and read(target) == b"three"
    assert sorted(os.listdir(tmp_path)) == ["f", "f.bak"]


def test_backup_is_copied_where_hard_links_fail(tmp_path, monkeypatch):
    target, backup = tmp_path / "f", tmp_path / "f.bak"
    write_atomic(target, b"one")

    def no_link(src, dst, *args, **kwargs):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), src, None, dst)

    monkeypatch.setattr(os, "link", no_link)
    write_atomic(target, b"two", backup=backup)
    assert read(backup) == b"one" and read(target) == b"two"
    assert os.stat(backup).st_ino != os.stat(target).st_ino
    assert sorted(os.listdir(tmp_path)) == ["f", "f.bak"]


@pytest.mark.parametrize("code", [errno.EBUSY, errno.EXDEV])
def test_a_single_file_bind_mount_is_a_config_error(realistic, monkeypatch, code):
    before = read(realistic.path)
    real_replace = os.replace

    def refuse(src, dst, *args, **kwargs):
        if os.fspath(dst) == realistic.path:
            raise OSError(code, os.strerror(code), src, None, dst)
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refuse)
    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(ConfigError) as caught:
        with realistic.transaction() as doc:
            doc["instances"]["x"] = instance()
    error = caught.value
    assert error.exit_code == 78
    assert [problem.kind for problem in error.problems] == ["single-file-mount"]
    meta = realistic.meta_dir
    assert error.lines() == [
        f"{realistic.path}: cannot replace the file ({os.strerror(code)}): it is most likely a single-file"
        " bind mount, and such a file can only be rewritten in place, which is not crash-safe;"
        f" bind-mount its directory {meta}/ instead of the file itself (for example"
        f" `-v /host/meta:{meta}` rather than `-v /host/instance-registry.json:{realistic.path}`)"]
    assert read(realistic.path) == before
    assert temp_files(realistic.meta_dir) == []
    monkeypatch.undo()
    assert realistic.load()["revision"] == 3


def _can_bind_mount():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_bind_mount(), reason="needs root and unshare --mount")
def test_a_real_single_file_bind_mount(realistic, tmp_path):
    """The file bind-mounted on its own, in a private mount namespace: rename(2) onto it fails."""
    host_copy = tmp_path / "host-registry.json"
    shutil.copyfile(realistic.path, host_copy)
    before = read(host_copy)
    script = textwrap.dedent(f"""
        import sys
        from comfy_init.errors import ComfyInitError
        from comfy_init.layout import Layout
        from comfy_init.store.registry import Registry
        try:
            with Registry(Layout({os.path.dirname(realistic.meta_dir)!r})).transaction() as doc:
                doc["instances"]["x"] = {{"created_at": "now", "claim_generation": 0}}
        except ComfyInitError as error:
            print(error.exit_code)
            print(error)
    """)
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount --bind "$1" "$2" && exec "$3" -c "$4"', "sh",
         str(host_copy), realistic.path, sys.executable, script],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "78", result.stdout
    assert "Device or resource busy" in lines[1] and "bind-mount its directory" in result.stdout
    assert read(host_copy) == before
    assert temp_files(realistic.meta_dir) == []


def test_other_os_errors_are_io_failures_and_leave_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "f"
    write_atomic(target, b"one")

    def broken_fsync(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(IOFailure) as caught:
        write_atomic(target, b"two")
    assert caught.value.exit_code == 74
    assert str(caught.value) == f"{target}: cannot write: Input/output error"
    monkeypatch.undo()
    assert read(target) == b"one"
    assert os.listdir(tmp_path) == ["f"]


def test_a_missing_directory_is_an_io_failure(tmp_path):
    target = tmp_path / "missing" / "f"
    with pytest.raises(IOFailure, match="cannot write: No such file or directory"):
        write_atomic(target, b"x")


def test_clean_stale_temps_only_touches_this_files_temps(tmp_path):
    # Under the writers' lock every temp file of the target is a dead writer's, whatever pid it names.
    target = tmp_path / "f.json"
    names = [".f.json.tmp-123-00ff", f".f.json.tmp-{os.getpid()}-0a0a", ".other.json.tmp-123-00ff", "f.json"]
    for name in names:
        (tmp_path / name).write_text("x")
    removed = clean_stale_temps(target)
    assert sorted(os.path.basename(p) for p in removed) == sorted(names[:2])
    assert sorted(os.listdir(tmp_path)) == sorted(names[2:])
    assert clean_stale_temps(tmp_path / "missing-dir" / "f") == []


def test_lock_file_times_out_while_another_process_holds_the_flock(tmp_path):
    lock = tmp_path / "x.lock"
    with flock_held_elsewhere(lock):
        started = time.monotonic()
        with pytest.raises(BusyError) as caught:
            with lock_file(lock, timeout=0.25):
                pass
        assert 0.25 <= time.monotonic() - started < 1.5
        assert caught.value.exit_code == 75
        text = str(caught.value)
        assert str(lock) in text and "another comfy-init" in text
        assert "nothing to delete" in text and "hung process" in text
    # Released with its holder: now it is free at once.
    with lock_file(lock, timeout=0.0) as held:
        assert held == str(lock)


def open_descriptors_of(path):
    found = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}") == str(path):
                found.append(int(name))
    return found


def test_lock_file_is_a_flock_on_a_close_on_exec_descriptor(tmp_path):
    lock = tmp_path / "x.lock"
    with lock_file(lock, timeout=1.0):
        [fd] = open_descriptors_of(lock)
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        with open("/proc/locks") as f:
            inode = os.stat(lock).st_ino
            ours = [line for line in f if f":{inode} " in line]
        assert ours and all(" FLOCK " in line and " WRITE " in line for line in ours), ours
        # Another open file description cannot take it, in this process or any other.
        other = os.open(lock, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    assert open_descriptors_of(lock) == []
    assert lock.exists()  # the lock file stays: deleting it would split the lock


def test_lock_file_created_by_someone_else_read_only_still_locks(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text("")
    os.chmod(lock, 0o444)
    with lock_file(lock, timeout=0.5):
        pass


def test_registry_lock_sidecar(realistic):
    assert os.path.exists(realistic.lock_path)
    with lock_file(realistic.lock_path, 1.0):
        with pytest.raises(BusyError):
            with registry_at(realistic.meta_dir, lock_timeout=0.05).transaction():
                pass


def test_the_lock_poll_interval_is_short():
    assert 0.005 <= locks.POLL_SECONDS <= 0.010


def test_backup_in_another_directory(tmp_path):
    (tmp_path / "old").mkdir()
    target, backup = tmp_path / "f", tmp_path / "old" / "f.bak"
    write_atomic(target, b"one", backup=backup)
    write_atomic(target, b"two", backup=backup)
    assert read(backup) == b"one" and read(target) == b"two"
    assert os.listdir(tmp_path / "old") == ["f.bak"]
