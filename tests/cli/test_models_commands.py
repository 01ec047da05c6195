"""`comfy-init models verify` and `comfy-init workflows ...` through click's CliRunner: envelopes,
exit codes, --fix, --instance, --force."""

import json
import os

from click.testing import CliRunner

from comfy_init.cli.main import cli
from tests.support.models import make_tree, safetensors_bytes, write
from tests.support.cli import envelope, invoke





def test_the_groups_have_their_subcommands():
    assert "  verify " in CliRunner().invoke(cli, ["models", "--help"]).output
    output = CliRunner().invoke(cli, ["workflows", "--help"]).output
    assert all(f"  {name} " in output for name in ("publish", "list", "import"))
    root = CliRunner().invoke(cli, ["--help"]).output
    assert "  models " in root and "  workflows " in root


def test_verify_reports_fixes_and_limits_to_an_instance(tmp_path):
    layout = make_tree(tmp_path, "core-a", "core-b")
    content = safetensors_bytes(2000)
    shared = write(f"{layout.shared_models}/loras/a.safetensors", content)
    copy = write(f"{layout.instance('core-a').custom_nodes}/n/models/a.safetensors", content)
    write(f"{layout.shared_models}/loras/b.safetensors", safetensors_bytes(2000, cut=1))
    text = invoke(tmp_path, "models", "verify", "--settle", "0")
    assert text.exit_code == 65 and "found: 1 model-damaged, 1 model-duplicate" in text.output
    assert "\r" not in text.output
    document = envelope(tmp_path, "models", "verify", "--settle", "0", "--instance", "core-b")
    assert document["data"]["instances"] == ["core-b"] and {p["kind"] for p in document["problems"]} == {"model-damaged"}
    fixed = envelope(tmp_path, "models", "verify", "--settle", "0", "--fix")
    assert fixed["data"]["fixed"][0]["path"] == copy and os.path.samefile(copy, shared)
    assert [p["kind"] for p in fixed["problems"]] == ["model-damaged"]
    assert envelope(tmp_path, "models", "verify", "--instance", "core-zz")["exit_code"] == 66
    assert invoke(tmp_path, "models", "verify", "--settle", "-1").exit_code == 2


def test_verify_without_shared_models_is_66(tmp_path):
    document = envelope(tmp_path, "models", "verify")
    assert document["exit_code"] == 66 and document["problems"][0]["path"].endswith("shared/models")


def test_workflows_publish_list_import(tmp_path):
    layout = make_tree(tmp_path, "core-a", "core-b")
    flow = json.dumps({"nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": ["x.ckpt"]}]}).encode()
    write(layout.instance("core-a").workflow("flow"), flow)
    published = envelope(tmp_path, "workflows", "publish", "core-a", "flow")
    assert published["exit_code"] == 0 and published["data"]["workflows"][0]["missing_models"] == ["x.ckpt"]
    listed = invoke(tmp_path, "workflows", "list")
    assert listed.exit_code == 0 and "flow" in listed.output and "x.ckpt" in listed.output
    assert envelope(tmp_path, "workflows", "list")["data"]["workflows"][0]["instance"] == "core-a"
    assert envelope(tmp_path, "workflows", "import", "flow", "--all")["exit_code"] == 0
    write(layout.instance("core-b").workflow("flow"), flow.replace(b"x.ckpt", b"y.ckpt"))
    refused = envelope(tmp_path, "workflows", "import", "flow", "--to", "core-b")
    assert refused["exit_code"] == 65 and refused["problems"][0]["kind"] == "workflow-exists"
    assert envelope(tmp_path, "workflows", "import", "flow", "--to", "core-b", "--force")["exit_code"] == 0
    assert envelope(tmp_path, "workflows", "import", "flow")["exit_code"] == 64
    assert invoke(tmp_path, "workflows", "publish", "core-a").exit_code == 2  # click: NAME... is required
