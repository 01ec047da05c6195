"""`comfy-init migrate` through click's CliRunner and as a real process: envelope, confirmation,
rollback, exit codes."""

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from comfy_init.cli.main import cli
from tests.support.cli import ENVELOPE_KEYS
from tests.support.oldtrees import build, old_manifests

def invoke(data, *args):
    return CliRunner().invoke(cli, ["migrate", *args, "--data", str(data)])


def test_dry_run_json_then_yes_then_rollback(tmp_path):
    root = build(str(tmp_path), "compat")
    exact = old_manifests(root)
    dry = invoke(tmp_path, "--dry-run", "--json")
    document = json.loads(dry.output)
    assert set(document) == ENVELOPE_KEYS and document["command"] == "migrate" and dry.exit_code == 0
    assert document["data"]["plan"]["instance"] == "main"
    assert set(document["data"]["plan"]["folders"]) == {"models", "custom_nodes", "user", "output", "input"}
    done = invoke(tmp_path, "--to-instance", "studio", "--port", "8301", "--yes")
    assert done.exit_code == 0, done.output
    assert "verified:" in done.output and "COMFY_INSTANCE_ID=studio" in done.output
    shown = CliRunner().invoke(cli, ["instance", "show", "studio", "--data", str(tmp_path), "--json"])
    assert json.loads(shown.output)["data"]["port"] == 8301
    back = invoke(tmp_path, "--rollback", "--yes", "--json")
    assert back.exit_code == 0 and json.loads(back.output)["data"]["state"] == "rolled-back"
    assert old_manifests(root) == exact


def test_without_yes_and_without_a_terminal_it_asks_for_yes(tmp_path):
    build(str(tmp_path), "compat")
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    done = subprocess.run([sys.executable, "-m", "comfy_init", "migrate", "--data", str(tmp_path)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 64 and "--yes" in done.stderr
    assert not os.path.lexists(tmp_path / "instances")


def test_rollback_without_a_migration_and_a_missing_data_dir(tmp_path):
    result = invoke(tmp_path, "--rollback", "--yes")
    assert result.exit_code == 66 and "holds no migration" in result.output
    assert invoke(tmp_path / "nope", "--dry-run").exit_code == 66
