"""`comfy-init registry show|recover` through click's CliRunner."""

import json

from click.testing import CliRunner

from comfy_init.cli.main import cli
from comfy_init.layout import Layout
from comfy_init.store.registry import Registry
from tests.support.registry_data import instance


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def test_show_lists_instances_and_claims(tmp_path):
    with Registry(Layout(str(tmp_path))).transaction() as document:
        document["instances"]["core-1"] = instance()
    result = invoke("registry", "show", "--data", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "instances: core-1" in result.output and "claims:    none" in result.output
    envelope = json.loads(invoke("registry", "show", "--data", str(tmp_path), "--json").output)
    assert envelope["data"]["document"]["instances"]["core-1"]["claim_generation"] == 0


def test_a_damaged_registry_names_the_cli_recovery_and_recover_fixes_it(tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "instance-registry.json").write_text("{not json")
    result = invoke("registry", "show", "--data", str(tmp_path), "--json")
    envelope = json.loads(result.output)
    assert result.exit_code == 65 and envelope["problems"][0]["kind"] == "registry-damaged"
    assert "run `comfy-init registry recover reset`" in envelope["problems"][0]["fix"]
    assert "COMFY_REGISTRY_RECOVER" not in result.output
    result = invoke("registry", "recover", "reset", "--data", str(tmp_path))
    assert result.exit_code == 0 and "reset" in result.output
    assert Registry(Layout(str(tmp_path))).load()["revision"] == 1
    assert [p.name for p in meta.glob("instance-registry.json.corrupt-*")] != []


def test_recover_refuses_an_unknown_mode(tmp_path):
    assert invoke("registry", "recover", "later", "--data", str(tmp_path)).exit_code == 2


def test_help_shows_an_example():
    assert "Example:" in invoke("registry", "recover", "--help").output


def test_an_error_escaping_a_command_is_one_envelope_naming_the_command(tmp_path, monkeypatch):
    from comfy_init.errors import DataError
    from comfy_init.ops import registry as operations

    def fails(layout):
        raise DataError("something in the way")

    monkeypatch.setattr(operations, "show_registry", fails)
    result = invoke("registry", "show", "--data", str(tmp_path), "--json")
    envelope = json.loads(result.output)
    assert result.exit_code == 65
    assert (envelope["command"], envelope["status"], envelope["problems"][0]["kind"]) == (
        "registry show", "failed", "invalid-data")


def test_a_click_usage_error_with_json_is_an_envelope_too(capsys):
    from comfy_init.cli.main import main

    assert main(["registry", "show", "--json", "--bogus"]) == 2
    envelope = json.loads(capsys.readouterr().out)
    assert (envelope["command"], envelope["exit_code"], envelope["problems"][0]["kind"]) == (
        "registry show", 2, "bad-option")
    assert main(["registry", "show", "--bogus"]) == 2
    assert "No such option" in capsys.readouterr().err


def test_a_data_directory_that_is_missing_or_not_a_directory_is_refused(tmp_path):
    missing = invoke("registry", "show", "--data", str(tmp_path / "nope"), "--json")
    assert missing.exit_code == 66 and json.loads(missing.output)["problems"][0]["kind"] == "missing-path"
    (tmp_path / "file").write_text("x")
    assert invoke("registry", "show", "--data", str(tmp_path / "file")).exit_code == 65
    assert invoke("registry", "show", "--data", "").exit_code == 64
    assert "no registry yet" in invoke("registry", "show", "--data", str(tmp_path)).output
