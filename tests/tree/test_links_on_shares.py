"""The instance's links on a share: the tree reaches shared/ through `models -> ../../shared/models`
and `input -> ../../shared/input`. Some mounts refuse to read such links back (Debian 12's sshfs
refuses any target holding `..` unless mounted with no_contain_symlinks): a start there must stop
with one line that names the mount's fix, not a traceback; where links work, one instance is
started, stopped and started again from the other mount."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from comfy_init.ops.verify_fs import verify_fs
from tests.support.ports import free_port
from tests.support.processes import ComfyInitProcess, instance_env
from tests.support.sshfs import refuses_dotdot_links, two_mounts, two_mounts_with_links  # noqa: F401
from tests.support.standin import make_checkout

IOERR = 74


def dry_run(data: Path, app: Path, instance_id: str) -> subprocess.CompletedProcess:
    env = instance_env(instance_id=instance_id, data=data, app=app, port=free_port())
    return subprocess.run([sys.executable, "-m", "comfy_init", "run", "--dry-run", "--json"], env=env,
                          capture_output=True, text=True, timeout=60)


def start_and_stop(data: Path, app: Path, instance_id: str, workdir: Path, name: str) -> int:
    env = instance_env(instance_id=instance_id, data=data, app=app, port=free_port(),
                       CLI_ARGS="--database-url sqlite:///:memory:")
    run = ComfyInitProcess(env, workdir, name).start()
    try:
        run.wait_ready(timeout=30)
        return run.stop()
    finally:
        run.kill()


def test_a_mount_that_refuses_the_links_stops_the_start_with_its_fix(two_mounts, tmp_path):  # noqa: F811
    if not refuses_dotdot_links():
        pytest.skip("this sshfs build reads `..` links back: nothing to refuse")
    app = make_checkout(tmp_path / "app")
    data = Path(two_mounts.a) / "data"
    assert start_and_stop(data, app, "shared-links", tmp_path, "first") == 0  # makes the links
    again = dry_run(Path(two_mounts.b) / "data", app, "shared-links")
    assert again.returncode == IOERR, again.stdout + again.stderr
    assert "Traceback" not in again.stderr
    problems = json.loads(again.stdout)["problems"]
    assert [p["kind"] for p in problems] == ["unreadable-link", "unreadable-link"], problems
    assert "no_contain_symlinks" in problems[0]["fix"]
    symlinks = verify_fs(two_mounts.a).data["checks"]["symlinks"]
    assert symlinks["ok"] is False and "no_contain_symlinks" in symlinks["detail"], symlinks


def test_where_links_work_an_instance_starts_again_from_the_other_mount(two_mounts_with_links,  # noqa: F811
                                                                        tmp_path):
    mounts = two_mounts_with_links
    app = make_checkout(tmp_path / "app")
    assert verify_fs(mounts.a).data["checks"]["symlinks"]["ok"] is True
    assert start_and_stop(Path(mounts.a) / "data", app, "shared-links", tmp_path, "on-a") == 0
    assert start_and_stop(Path(mounts.b) / "data", app, "shared-links", tmp_path, "on-b") == 0
    models = Path(mounts.b) / "data" / "instances" / "shared-links" / "models"
    assert models.resolve() == (Path(mounts.b) / "data" / "shared" / "models").resolve()
