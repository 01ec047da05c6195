"""Template folders on disk: written once, whole or not at all, one winner per name."""

import os
import threading

import pytest

from comfy_init.errors import ComfyInitError
from comfy_init.layout import Layout
from comfy_init.store import templates


def document(name):
    return {"template_version": 1, "name": name, "created_at": "2026-12-01T00:00:00Z", "source_instance": "a",
            "files": ["user/default/comfy.settings.json"], "secrets_left_out": [], "nodes": [], "cli_args": []}


def test_racing_creators_of_one_name_leave_one_whole_template(tmp_path):
    layout = Layout(str(tmp_path))
    outcomes, barrier = [], threading.Barrier(8)

    def create(number):
        barrier.wait()
        try:
            templates.write_template(layout, document("t"), {"user/default/comfy.settings.json": b'{"n": %d}' % number})
            outcomes.append("ok")
        except ComfyInitError as error:
            outcomes.append(error.problems[0].kind)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok"] + ["template-exists"] * 7
    assert sorted(os.listdir(layout.shared_configs)) == [".lock", "t"]  # no half-built folder left
    assert templates.read_template(layout, "t")["name"] == "t"
    assert templates.read_template_file(layout, "t", "user/default/comfy.settings.json").startswith(b'{"n": ')


def test_a_document_that_breaks_the_schema_is_never_written(tmp_path):
    layout = Layout(str(tmp_path))
    with pytest.raises(ComfyInitError) as raised:
        templates.write_template(layout, dict(document("t"), files=["../x"]), {})
    assert raised.value.problems[0].kind == "template-damaged"
    assert templates.template_names(layout) == []


def test_a_template_in_the_wrong_folder_or_missing_a_file_is_damaged(tmp_path):
    layout = Layout(str(tmp_path))
    templates.write_template(layout, document("t"), {"user/default/comfy.settings.json": b"{}"})
    os.rename(layout.template_dir("t"), layout.template_dir("u"))
    with pytest.raises(ComfyInitError) as raised:
        templates.read_template(layout, "u")
    assert raised.value.problems[0].kind == "template-damaged"
    os.unlink(layout.template_file(layout.template_dir("u"), "user/default/comfy.settings.json"))
    with pytest.raises(ComfyInitError) as raised:
        templates.read_template_file(layout, "u", "user/default/comfy.settings.json")
    assert raised.value.exit_code == 65


def test_a_dead_creators_half_built_folder_is_removed_by_the_next_create(tmp_path):
    layout = Layout(str(tmp_path))
    os.makedirs(layout.template_building_dir("t", "dead0001"))
    (tmp_path / "meta" / "shared-configs" / ".t.building-dead0001" / "template.json").write_text("{")
    templates.write_template(layout, document("u"), {"user/default/comfy.settings.json": b"{}"})
    assert sorted(os.listdir(layout.shared_configs)) == [".lock", "u"]
