"""Reading and writing the registry: round trip, revisions, .bak, no-op and failed transactions."""

import json
import os
import stat
import subprocess
import sys
import time

import pytest
from tests.support.registry_data import instance, registry_at, temp_files

from comfy_init.errors import CannotCreateError, DataError
from comfy_init.store import registry as registry_module
from comfy_init.store.registry import REGISTRY_NAME, empty_document

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_paths(meta):
    reg = registry_at(meta)
    assert reg.path == os.path.join(meta, "instance-registry.json")
    assert reg.lock_path == os.path.join(meta, "instance-registry.json.lock")
    assert reg.backup_path == os.path.join(meta, "instance-registry.json.bak")
    assert REGISTRY_NAME == "instance-registry.json"


def test_empty_document_is_valid_and_at_revision_0():
    doc = empty_document()
    assert doc["schema_version"] == 2 and doc["revision"] == 0
    assert doc["instances"] == {} and doc["claims"] == {}
    assert registry_module.schema_problems(doc) == []


def test_load_of_a_missing_directory_creates_nothing(tmp_path):
    meta = tmp_path / "meta"
    doc = registry_at(meta).load()
    assert doc["revision"] == 0 and doc["instances"] == {}
    assert not meta.exists()


def test_transaction_creates_the_meta_directory(tmp_path):
    reg = registry_at(tmp_path / "data" / "meta")
    with reg.transaction() as doc:
        doc["instances"]["core-1"] = instance()
    assert reg.load()["instances"] == {"core-1": instance()}


def test_round_trip(realistic):
    doc = realistic.load()
    assert doc["revision"] == 3
    assert set(doc["instances"]) == {"core-1", "cpu-1"}
    assert doc["instances"]["cpu-1"]["template"] is None
    assert doc["claims"]["core-1"]["lease_seconds"] == 30.0
    with open(realistic.path, "rb") as f:
        assert json.loads(f.read()) == doc
    # A second Registry on the same directory sees the same document.
    assert registry_at(realistic.meta_dir).load() == doc


def test_revision_increments_and_bak_holds_the_previous_version(registry):
    assert not os.path.exists(registry.backup_path)
    with registry.transaction() as doc:
        doc["instances"]["a"] = instance()
    # The first write has nothing to back up.
    assert not os.path.exists(registry.backup_path)
    for expected in range(2, 6):
        with open(registry.path, "rb") as f:
            previous = f.read()
        with registry.transaction() as doc:
            assert doc["revision"] == expected - 1
            doc["instances"][f"i{expected}"] = instance()
        assert registry.load()["revision"] == expected
        with open(registry.backup_path, "rb") as f:
            assert f.read() == previous
        assert registry_at(registry.meta_dir).load()["revision"] == expected


def test_updated_at_is_set_on_write(registry):
    with registry.transaction() as doc:
        doc["instances"]["a"] = instance()
        doc["updated_at"] = "never"
    written = registry.load()["updated_at"]
    assert written != "never"
    assert time.strptime(written, "%Y-%m-%dT%H:%M:%SZ")


def test_the_caller_cannot_move_the_revision(registry):
    with registry.transaction() as doc:
        doc["instances"]["a"] = instance()
    with registry.transaction() as doc:
        doc["instances"]["b"] = instance()
        doc["revision"] = 0
    assert registry.load()["revision"] == 2
    # Changing only the revision is not a change.
    with registry.transaction() as doc:
        doc["revision"] = 99
    assert registry.load()["revision"] == 2


def test_no_write_when_nothing_changed(realistic):
    before = os.stat(realistic.path)
    bak_before = os.stat(realistic.backup_path)
    with realistic.transaction() as doc:
        doc["instances"]["core-1"]["port"] = doc["instances"]["core-1"]["port"]  # same value
    after = os.stat(realistic.path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert os.stat(realistic.backup_path).st_ino == bak_before.st_ino
    assert realistic.load()["revision"] == 3


def test_no_write_and_no_file_when_an_empty_registry_is_left_unchanged(registry):
    with registry.transaction() as doc:
        assert doc["revision"] == 0
    assert not os.path.exists(registry.path)
    assert os.path.isdir(registry.meta_dir)


def test_an_exception_inside_the_transaction_writes_nothing(realistic):
    with open(realistic.path, "rb") as f:
        before = f.read()
    with open(realistic.backup_path, "rb") as f:
        bak_before = f.read()
    with pytest.raises(RuntimeError, match="boom"):
        with realistic.transaction() as doc:
            doc["instances"]["new-1"] = instance()
            del doc["claims"]["core-1"]
            raise RuntimeError("boom")
    with open(realistic.path, "rb") as f:
        assert f.read() == before
    with open(realistic.backup_path, "rb") as f:
        assert f.read() == bak_before
    assert temp_files(realistic.meta_dir) == []
    # And the lock was released.
    with registry_at(realistic.meta_dir, lock_timeout=0.1).transaction() as doc:
        doc["instances"]["new-2"] = instance()
    assert realistic.load()["revision"] == 4


def test_a_change_that_breaks_the_schema_is_refused_and_nothing_is_written(realistic):
    with open(realistic.path, "rb") as f:
        before = f.read()
    with pytest.raises(DataError) as caught:
        with realistic.transaction() as doc:
            doc["claims"]["core-1"]["pid"] = 0
            doc["instances"]["Bad_Id"] = instance()
    assert caught.value.exit_code == 65
    text = str(caught.value)
    assert "$.claims.core-1.pid: 0 is less than the minimum of 1" in text
    assert "'Bad_Id' is not a valid instance id" in text
    assert caught.value.lines()[-1] == (
        "fix: nothing was written; this is a bug in comfy-init: please report these lines")
    with open(realistic.path, "rb") as f:
        assert f.read() == before


def test_an_infinite_number_is_refused(realistic):
    with pytest.raises(DataError, match="refused to write"):
        with realistic.transaction() as doc:
            doc["claims"]["core-1"]["lease_seconds"] = float("inf")
    assert realistic.load()["revision"] == 3


def test_the_file_mode_is_kept(realistic):
    os.chmod(realistic.path, 0o664)
    with realistic.transaction() as doc:
        doc["instances"]["x"] = instance()
    assert stat.S_IMODE(os.stat(realistic.path).st_mode) == 0o664


def test_stray_temp_files_are_removed_by_the_next_write(realistic):
    # Writers make temp files only under the lock, so the next writer removes every one it finds,
    # whatever pid it names (pids are reused, and other containers' pids cannot be seen).
    meta = realistic.meta_dir
    names = {
        "stray": ".instance-registry.json.tmp-123-0123abcd",
        "stray_bak": ".instance-registry.json.bak.tmp-123-4567cdef",
        "our_pid": f".instance-registry.json.tmp-{os.getpid()}-89ab0123",
        "unrelated": ".instance-registry.json.tmp-notapid",
    }
    for name in names.values():
        with open(os.path.join(meta, name), "w") as f:
            f.write('{"half": ')
    with realistic.transaction() as doc:
        doc["instances"]["x"] = instance()
    left = {os.path.basename(p) for p in os.listdir(meta)}
    assert not {names["stray"], names["stray_bak"], names["our_pid"]} & left
    assert names["unrelated"] in left


def test_importing_the_module_does_not_import_jsonschema(tmp_path):
    code = (
        "import sys, comfy_init.layout, comfy_init.store.registry, comfy_init.store.files\n"
        "from comfy_init.layout import Layout\n"
        "from comfy_init.store.registry import Registry, empty_document, schema_problems\n"
        "assert 'jsonschema' not in sys.modules, 'jsonschema imported at module import'\n"
        "Registry(Layout('/nonexistent')).load()\n"
        "assert 'jsonschema' not in sys.modules, 'jsonschema imported for a missing registry'\n"
        "registry = Registry(Layout(sys.argv[1]))\n"
        "with registry.transaction() as doc:\n"
        "    doc['instances']['a'] = {'created_at': '2026-11-28T06:00:00Z', 'claim_generation': 0}\n"
        "assert registry.load()['revision'] == 1\n"
        "assert 'jsonschema' not in sys.modules, 'jsonschema imported to write or read a valid registry'\n"
        "schema_problems(empty_document())\n"
        "assert 'jsonschema' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "data")], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": REPO})


def test_the_validator_is_compiled_once():
    first = registry_module._validator()
    assert registry_module._validator() is first
    fast = registry_module._fast_validator()
    assert registry_module._fast_validator() is fast


def test_the_schema_is_valid_draft_2020_12():
    from importlib import resources

    import jsonschema

    schema = json.loads(resources.files("comfy_init.store").joinpath("registry.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_instances_keep_unknown_keys_but_the_top_level_does_not(registry):
    with registry.transaction() as doc:
        doc["instances"]["a"] = instance(future_option={"x": 1})
    assert registry.load()["instances"]["a"]["future_option"] == {"x": 1}
    with pytest.raises(DataError, match=r"\$: Additional properties are not allowed \('extra' was unexpected\)"):
        with registry.transaction() as doc:
            doc["extra"] = 1


def test_a_meta_directory_that_cannot_be_created_is_exit_73(tmp_path):
    (tmp_path / "data").write_text("a file where a directory should be")
    with pytest.raises(CannotCreateError) as caught:
        with registry_at(tmp_path / "data" / "meta").transaction():
            pass
    assert caught.value.exit_code == 73
    assert "cannot create the directory" in str(caught.value)


def test_entries_already_checked_are_checked_again_when_their_type_changes(realistic):
    """Every read is checked in full, however recently the file was valid; `false` is not `0`."""
    realistic.load()  # valid a moment ago
    with open(realistic.path, encoding="utf-8") as f:
        text = f.read()
    assert '"claim_generation": 0' in text
    with open(realistic.path, "w", encoding="utf-8") as f:
        f.write(text.replace('"claim_generation": 0', '"claim_generation": false', 1))
    with pytest.raises(DataError, match=r"\$\.instances\.cpu-1\.claim_generation: False is not of type 'integer'"):
        realistic.load()
    with pytest.raises(DataError):
        with realistic.transaction():
            pass


def test_a_changed_entry_is_checked_before_writing_even_if_it_was_valid_before(realistic):
    with pytest.raises(DataError, match=r"\$\.claims\.core-1\.heartbeat: True is not of type 'integer'"):
        with realistic.transaction() as doc:
            doc["claims"]["core-1"]["heartbeat"] = True
    assert realistic.load()["revision"] == 3


def test_a_string_schema_version_is_one_problem(realistic):
    doc = realistic.load()
    doc["schema_version"] = "2"
    with open(realistic.path, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    with pytest.raises(DataError) as caught:
        realistic.load()
    assert caught.value.lines()[1:-1] == ["  $.schema_version: 2 was expected"]


def test_a_version_1_registry_is_read_and_written_back_as_version_2(registry):
    version_1 = {"schema_version": 1, "revision": 4, "updated_at": "2026-11-01T00:00:00Z",
                 "instances": {"core-1": instance(port=8188, listen="0.0.0.0")}, "claims": {}}
    os.makedirs(registry.meta_dir)
    with open(registry.path, "w", encoding="utf-8") as f:
        json.dump(version_1, f)
    document = registry.load()
    assert document["schema_version"] == 2 and document["instances"] == version_1["instances"]
    with registry.transaction() as doc:
        doc["instances"]["core-1"]["variant"] = "core"
    with open(registry.path, encoding="utf-8") as f:
        written = json.load(f)
    assert (written["schema_version"], written["revision"]) == (2, 5)
    with open(registry.backup_path, encoding="utf-8") as f:
        assert json.load(f)["schema_version"] == 1  # the version-1 file is kept as the .bak


def test_a_version_1_file_that_breaks_the_schema_is_still_damaged(registry):
    os.makedirs(registry.meta_dir)
    with open(registry.path, "w", encoding="utf-8") as f:
        json.dump({"schema_version": 1, "revision": -1, "updated_at": "", "instances": {}, "claims": {}}, f)
    with pytest.raises(DataError, match=r"\$\.revision: -1 is less than the minimum of 0"):
        registry.load()
