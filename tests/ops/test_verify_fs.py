"""`comfy-init verify-fs` on the local filesystem, a tmpfs, and two sshfs mounts of one directory
(whose flock does not reach across mounts)."""

import json
import os
import subprocess

import pytest
from click.testing import CliRunner

from comfy_init.cli.main import cli
from comfy_init.ops.verify_fs import verify_fs
from tests.support.sshfs import two_mounts_with_links  # noqa: F401 (a fixture)


def _ok(result):
    return {name: check["ok"] for name, check in result.data["checks"].items()}


def test_local_filesystem_keeps_every_promise(tmp_path):
    result = verify_fs(str(tmp_path))
    assert result.exit_code == 0, result.problems
    assert all(_ok(result).values()), result.lines
    assert result.data["claim_mode"] == "locks+lease" and "--other" in result.data["why"]
    assert os.listdir(tmp_path) == [], "the scratch folder is removed"


def test_tmpfs(tmp_path):
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        result = verify_fs(str(mount))
        assert result.exit_code == 0 and result.data["filesystem"] == "tmpfs"
        assert all(_ok(result).values())
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def test_two_sshfs_mounts_flock_does_not_reach_across(two_mounts_with_links):  # noqa: F811
    two_mounts = two_mounts_with_links  # mounted so that links work: this test is about locks
    one = verify_fs(two_mounts.a)
    assert one.data["filesystem"] == "fuse.sshfs"
    assert one.data["checks"]["flock"]["ok"], "within one mount the kernel's own lock excludes"
    across = verify_fs(two_mounts.a, other=two_mounts.b)
    assert across.exit_code == 0, across.problems
    checks = _ok(across)
    assert checks["flock-across-mounts"] is False
    assert checks["exclusive-create-across-mounts"] is True, "O_EXCL is decided by the server"
    assert across.data["claim_mode"] == "lease-only"
    print(json.dumps(across.data, indent=2))  # the figures quoted in docs/scale-out.md


def test_bad_directories(tmp_path):
    assert verify_fs(str(tmp_path / "missing")).exit_code == 66
    other = tmp_path / "elsewhere"
    other.mkdir()
    mismatch = verify_fs(str(tmp_path), other=str(other))
    assert mismatch.exit_code == 64 and "SAME directory" in mismatch.problems[0].fix


def test_cli_envelope(tmp_path):
    result = CliRunner().invoke(cli, ["verify-fs", str(tmp_path), "--json"])
    document = json.loads(result.output)
    assert result.exit_code == 0 and document["command"] == "verify-fs"
    assert document["data"]["checks"]["atomic-rename"]["ok"] is True
    defaulted = CliRunner().invoke(cli, ["verify-fs", "--data", str(tmp_path), "--json"])
    assert json.loads(defaulted.output)["data"]["directory"] == str(tmp_path)
