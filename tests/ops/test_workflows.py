"""Workflows publish/list/import: a round trip, refusal to overwrite, --force keeping a backup,
invalid files refused before anything is written, missing models reported."""

import json
import os

import pytest

from comfy_init.ops.workflows.commands import import_workflows, list_workflows, publish_workflows
from tests.support.models import make_tree, write

A, B, C = "core-a", "core-b", "core-c"


def ui_workflow(*models, extra=None):
    nodes = [{"id": n + 1, "type": "CheckpointLoaderSimple", "widgets_values": [m]} for n, m in enumerate(models)]
    return json.dumps({"last_node_id": len(nodes), "nodes": nodes, "links": [], **(extra or {})}).encode()


@pytest.fixture
def layout(tmp_path):
    layout = make_tree(tmp_path / "data", A, B, C)
    write(f"{layout.shared_models}/checkpoints/sd15.safetensors", b"m")
    write(f"{layout.shared_models}/loras/sub/style.safetensors", b"m")
    return layout


def test_publish_list_import_round_trip(layout):
    content = ui_workflow("sd15.safetensors", "sub\\style.safetensors")
    write(layout.instance(A).workflow("sdxl/portrait"), content)
    published = publish_workflows(layout, A, ["sdxl/portrait.json"])
    assert published.exit_code == 0, published.problems
    with open(layout.shared_workflow("sdxl/portrait"), "rb") as stream:
        assert stream.read() == content
    (row,) = list_workflows(layout).data["workflows"]
    assert row["name"] == "sdxl/portrait" and row["instance"] == A and row["missing_models"] == []
    assert "@" in row["published_by"] and row["published_at"].endswith("Z")
    imported = import_workflows(layout, ["sdxl/portrait"], to=B)
    assert imported.exit_code == 0 and [r["outcome"] for r in imported.data["workflows"]] == ["new"]
    with open(layout.instance(B).workflow("sdxl/portrait"), "rb") as stream:
        assert stream.read() == content
    assert not os.path.islink(layout.instance(B).workflow("sdxl/portrait"))  # a copy: ComfyUI refuses links out
    everywhere = import_workflows(layout, ["sdxl/portrait"], all_instances=True)
    assert {(r["instance"], r["outcome"]) for r in everywhere.data["workflows"]} == {
        (A, "same"), (B, "same"), (C, "new")}


def test_nothing_is_overwritten_without_force_and_force_keeps_a_backup(layout):
    write(layout.instance(A).workflow("w"), ui_workflow("sd15.safetensors"))
    assert publish_workflows(layout, A, ["w"]).exit_code == 0
    old = ui_workflow("other.safetensors")
    write(layout.instance(B).workflow("w"), old)
    refused = import_workflows(layout, ["w"], all_instances=True)
    assert refused.exit_code == 65 and [p.kind for p in refused.problems] == ["workflow-exists"]
    assert refused.problems[0].path == layout.instance(B).workflow("w") and "--force" in refused.problems[0].fix
    assert not os.path.exists(layout.instance(C).workflow("w"))  # all or nothing
    forced = import_workflows(layout, ["w"], to=B, force=True)
    (row,) = forced.data["workflows"]
    assert row["outcome"] == "replaced"
    with open(row["backup"], "rb") as backup:
        assert backup.read() == old
    assert ".before-import-" in row["backup"]
    write(layout.instance(B).workflow("w"), old)
    assert publish_workflows(layout, B, ["w"]).problems[0].kind == "workflow-exists"
    republished = publish_workflows(layout, B, ["w"], force=True)
    assert republished.data["workflows"][0]["outcome"] == "replaced"
    with open(republished.data["workflows"][0]["backup"], "rb") as backup:
        assert backup.read() == ui_workflow("sd15.safetensors")
    assert list_workflows(layout).data["workflows"][0]["instance"] == B


@pytest.mark.parametrize("content, why", [
    (b"{nope", "not JSON"), (b"[1]", "not a JSON object"), (b'{"nodes": [{"id": 1}]}', "nodes[0]"),
    (b'{"3": {"inputs": {}}}', "neither"), (b"\xff\xfe", "UTF-8")])
def test_invalid_files_are_refused_before_anything_is_written(layout, content, why):
    write(layout.instance(A).workflow("good"), ui_workflow())
    write(layout.instance(A).workflow("bad"), content)
    result = publish_workflows(layout, A, ["good", "bad"])
    assert result.exit_code == 65 and [p.kind for p in result.problems] == ["workflow-invalid"]
    assert why in result.problems[0].message and result.problems[0].path == layout.instance(A).workflow("bad")
    assert not os.path.exists(layout.shared_workflow("good"))
    write(layout.shared_workflow("planted"), content)  # put there by hand
    imported = import_workflows(layout, ["planted"], to=B)
    assert imported.exit_code == 65 and not os.path.exists(layout.instance(B).workflow("planted"))


def test_missing_models_are_reported_at_publish_and_import(layout):
    api = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
           "5": {"class_type": "LoraLoader", "inputs": {"lora_name": "gone.safetensors", "strength": 1}}}
    write(layout.instance(A).workflow("api"), json.dumps(api).encode())
    templated = {"nodes": [{"id": 1, "type": "UNETLoader", "widgets_values": ["flux.safetensors", "default"],
                            "properties": {"models": [{"name": "flux.safetensors", "directory": "diffusion_models"},
                                                      {"name": "sd15.safetensors", "directory": "loras"}]}}]}
    write(layout.instance(A).workflow("templated"), json.dumps(templated).encode())
    published = publish_workflows(layout, A, ["api", "templated"])
    assert published.exit_code == 0
    assert [r["missing_models"] for r in published.data["workflows"]] == [
        ["gone.safetensors"], ["flux.safetensors", "sd15.safetensors"]]
    assert any("needs gone.safetensors: not in shared/models" in line for line in published.lines)
    imported = import_workflows(layout, ["templated"], to=B)
    assert imported.data["workflows"][0]["missing_models"] == ["flux.safetensors", "sd15.safetensors"]
    assert any("needs flux.safetensors (diffusion_models)" in line for line in imported.lines)


def test_unknown_names_instances_and_bad_arguments(layout):
    assert publish_workflows(layout, A, ["none"]).problems[0].kind == "unknown-workflow"
    assert publish_workflows(layout, A, ["none"]).exit_code == 66
    assert publish_workflows(layout, "core-zz", ["w"]).exit_code == 66
    assert publish_workflows(layout, A, ["../escape"]).exit_code == 64
    assert import_workflows(layout, ["w"]).exit_code == 64  # neither --to nor --all
    assert import_workflows(layout, ["w"], to=A, all_instances=True).exit_code == 64
    assert import_workflows(layout, ["none"], to=A).exit_code == 66
    assert list_workflows(layout).lines == ["no shared workflows"]


def test_subgraph_nodes_count_and_republishing_the_same_bytes_changes_nothing(layout):
    flow = {"nodes": [{"id": 1, "type": "subgraph-1"}],
            "definitions": {"subgraphs": [{"nodes": [{"id": 2, "type": "VAELoader", "widgets_values": ["vae.pt"]}]}]}}
    write(layout.instance(A).workflow("sub"), json.dumps(flow).encode())
    first = publish_workflows(layout, A, ["sub"])
    assert first.data["workflows"][0]["missing_models"] == ["vae.pt"]
    again = publish_workflows(layout, A, ["sub"])
    assert again.data["workflows"][0]["outcome"] == "same" and "unchanged" in again.lines[0]
    assert sorted(os.listdir(layout.shared_workflows)) == [".lock", ".published.json", "sub.json"]


def test_a_forced_import_keeps_its_backup_under_a_free_name_and_an_earlier_one_intact(layout, monkeypatch):
    from comfy_init.ops.workflows import commands

    write(layout.shared_workflow("w"), ui_workflow("sd15.safetensors"))
    target = write(layout.instance(A).workflow("w"), ui_workflow("mine.safetensors"))
    monkeypatch.setattr(commands, "utc_stamp", lambda: "20260101T000000Z")
    taken = write(f"{target}.before-import-20260101T000000Z", b"an earlier backup")
    (row,) = import_workflows(layout, ["w"], to=A, force=True).data["workflows"]
    assert row["backup"] == taken + ".1"
    with open(taken, "rb") as earlier, open(row["backup"], "rb") as backup:
        assert earlier.read() == b"an earlier backup" and backup.read() == ui_workflow("mine.safetensors")


def test_import_waits_for_the_instance_lock_and_force_never_writes_onto_a_folder(layout, monkeypatch):
    from comfy_init.ops.workflows import commands
    from comfy_init.store import locks

    write(layout.shared_workflow("w"), ui_workflow("sd15.safetensors"))
    monkeypatch.setattr(commands, "LOCK_TIMEOUT", 0.05)
    os.makedirs(layout.locks, exist_ok=True)
    held = locks.try_lock(layout.workflows_lock(B))  # another import into core-b is running
    try:
        busy = import_workflows(layout, ["w"], all_instances=True)
    finally:
        held.release()
    assert busy.exit_code == 75 and busy.problems[0].path == layout.workflows_lock(B)
    assert not os.path.exists(layout.instance(A).workflow("w"))
    os.makedirs(layout.instance(C).workflow("w"))  # a folder where the file goes: --force does not help
    refused = import_workflows(layout, ["w"], all_instances=True, force=True)
    assert refused.exit_code == 65 and refused.problems[0].path == layout.instance(C).workflow("w")
    assert not os.path.exists(layout.instance(A).workflow("w"))


def test_a_deeply_nested_index_is_rebuilt_by_the_next_publish(layout):
    write(layout.instance(A).workflow("w"), ui_workflow("sd15.safetensors"))
    write(layout.shared_workflows_index, b"[" * 200000 + b"]" * 200000)
    assert list_workflows(layout).exit_code == 0
    assert publish_workflows(layout, A, ["w"]).exit_code == 0
    (row,) = list_workflows(layout).data["workflows"]
    assert row["instance"] == A
