"""`comfy-init check [--fix] [--json]` through click's CliRunner: exit codes, the envelope, the text."""

import os
import time

from click.testing import CliRunner

from comfy_init.cli.main import cli, main
from tests.support.cli import envelope as cli_envelope, invoke as cli_invoke

def invoke(data, *args):
    return cli_invoke(data, "check", *args)


def envelope(data, *args):
    return cli_envelope(data, "check", *args)


def make_tree(data):
    for instance_id in ("a-1", "b-1"):
        result = CliRunner().invoke(cli, ["instance", "create", instance_id, "--data", str(data)])
        assert result.exit_code == 0, result.output


def test_a_clean_tree_exits_0_with_one_line(tmp_path):
    make_tree(tmp_path)
    result = invoke(tmp_path)
    assert result.exit_code == 0
    assert result.output == f"{tmp_path}: no findings (2 instances checked)\n"


def test_findings_exit_1_each_on_one_error_line_with_its_fix(tmp_path):
    make_tree(tmp_path)
    os.unlink(tmp_path / "instances" / "b-1" / "models")
    (tmp_path / "instances" / "orphan-1").mkdir()
    result = invoke(tmp_path)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 4  # the orphan, its two links, b-1's models link
    assert all("; " in line for line in errors)
    assert "2 instances" not in result.output and "`comfy-init check --fix` does the safe fixes" in result.output


def test_fix_reports_each_fix_and_exits_0_once_nothing_is_left(tmp_path):
    make_tree(tmp_path)
    os.unlink(tmp_path / "instances" / "b-1" / "models")
    stray = tmp_path / "meta" / ".instance-registry.json.tmp-12-abcdef01"
    stray.write_bytes(b"{")
    os.utime(stray, (time.time() - 7200,) * 2)
    document = envelope(tmp_path, "--fix")
    assert (document["status"], document["exit_code"], document["problems"]) == ("ok", 0, [])
    assert sorted(item["kind"] for item in document["data"]["fixed"]) == ["link-missing", "stray-temporary"]
    assert os.readlink(tmp_path / "instances" / "b-1" / "models") == "../../shared/models" and not stray.exists()
    assert envelope(tmp_path)["exit_code"] == 0


def test_the_envelope_of_findings_lists_each_as_a_problem(tmp_path):
    make_tree(tmp_path)
    os.unlink(tmp_path / "instances" / "a-1" / "input")
    document = envelope(tmp_path)
    assert (document["command"], document["status"], document["exit_code"]) == ("check", "failed", 1)
    assert [(p["kind"], p["path"]) for p in document["problems"]] == [
        ("link-missing", str(tmp_path / "instances" / "a-1" / "input"))]
    assert document["data"]["findings"] == 1 and document["data"]["fixable"] == 1


def test_a_missing_data_directory_stops_the_check_with_66(tmp_path):
    document = envelope(tmp_path / "nowhere")
    assert (document["exit_code"], document["problems"][0]["kind"]) == (66, "missing-path")
    assert document["problems"][0]["path"] == str(tmp_path / "nowhere")


def test_a_bad_puid_is_a_usage_error(tmp_path, capsys):
    assert main(["check", "--puid", "-3", "--data", str(tmp_path)]) == 2
    assert "--puid" in capsys.readouterr().err


def test_a_checkout_database_is_found_through_comfy_app_directory(tmp_path, monkeypatch):
    make_tree(tmp_path / "data")
    app = tmp_path / "comfyui"
    (app / "user").mkdir(parents=True)
    (app / "user" / "comfyui.db").write_bytes(b"SQLite format 3\x00")
    monkeypatch.setenv("COMFY_APP_DIRECTORY", str(app))
    document = envelope(tmp_path / "data")
    assert [p["kind"] for p in document["problems"]] == ["checkout-database"]
    monkeypatch.setenv("COMFY_APP_DIRECTORY", str(tmp_path / "none"))
    assert envelope(tmp_path / "data")["exit_code"] == 0  # no checkout where the variable says: skipped


def test_an_app_option_naming_no_directory_is_66_naming_it(tmp_path):
    make_tree(tmp_path)
    document = envelope(tmp_path, "--app", str(tmp_path / "none"))
    assert (document["exit_code"], document["problems"][0]["kind"]) == (66, "missing-path")
    assert document["problems"][0]["path"] == str(tmp_path / "none") and "--app" in document["problems"][0]["message"]
