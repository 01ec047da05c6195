"""A damaged, invalid or newer registry: DataError with the exact fix, nothing touched, and recovery."""

import json
import os
import time

import pytest
from tests.support.registry_data import claim, instance, registry_at

from comfy_init import __version__
from comfy_init.errors import ComfyInitError, DataError
from comfy_init.store import registry as registry_module
from comfy_init.store.registry import RegistryDamaged, RegistryNewer

KEPT = "the bad file is kept as instance-registry.json.corrupt-<time>"
# The fix lines the registry itself writes (it knows no environment), and what the boot path makes
# of them with RegistryDamaged.advise.
BACKUP_FIX = ("recover it with mode 'backup' to restore instance-registry.json.bak (revision 2),"
              f" or recover it with mode 'reset' to start an empty registry; {KEPT}")
NO_BAK_FIX = ("recover it with mode 'reset' to start an empty registry (instance-registry.json.bak"
              f" does not exist); {KEPT}")
BOOT_BACKUP_FIX = ("set COMFY_REGISTRY_RECOVER=backup to restore instance-registry.json.bak (revision 2),"
                   f" or set COMFY_REGISTRY_RECOVER=reset to start an empty registry; {KEPT}")
BOOT_NO_BAK_FIX = ("set COMFY_REGISTRY_RECOVER=reset to start an empty registry (instance-registry.json.bak"
                   f" does not exist); {KEPT}")


def boot_advice(mode):
    return f"set COMFY_REGISTRY_RECOVER={mode}"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def load_error(reg) -> DataError:
    with pytest.raises(DataError) as caught:
        reg.load()
    assert caught.value.exit_code == 65
    return caught.value


def test_truncated_at_every_offset_raises_data_error_and_leaves_the_file_alone(realistic):
    full = read(realistic.path)
    assert full.endswith(b"}\n")
    complete = realistic.load()
    for offset in range(len(full)):
        prefix = full[:offset]
        write(realistic.path, prefix)
        before = os.stat(realistic.path)
        if prefix.rstrip() == full.rstrip():
            # Only the trailing newline is gone: the JSON text is complete, and correct.
            assert realistic.load() == complete
            continue
        error = load_error(realistic)
        assert isinstance(error, RegistryDamaged)
        [problem] = error.problems
        assert problem.kind == "registry-damaged" and problem.path == realistic.path
        assert "empty" in problem.message or "not valid JSON" in problem.message, error.lines()
        assert error.lines() == [f"{realistic.path}: {problem.message}; {BACKUP_FIX}"]
        after = os.stat(realistic.path)
        assert read(realistic.path) == prefix
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(os.listdir(realistic.meta_dir)) == [
        "instance-registry.json", "instance-registry.json.bak", "instance-registry.json.lock"]
    advised = error.advise(boot_advice)
    assert advised.lines() == [f"{realistic.path}: {problem.message}; {BOOT_BACKUP_FIX}"]
    assert advised.exit_code == 65


def test_a_truncated_file_is_called_truncated(realistic):
    write(realistic.path, read(realistic.path)[:100])
    assert "it was probably truncated" in load_error(realistic).lines()[0]


@pytest.mark.parametrize(
    "content, says",
    [
        (b"", "is empty"),
        (b"  \n", "nothing but white space"),
        (b"\xff\xfe{}", "is not UTF-8 text"),
        (b"not json", "is not valid JSON: Expecting value at line 1 column 1"),
        (b"[1, 2]", "its top level is a JSON array, not an object"),
        (b'"text"', "its top level is a JSON string, not an object"),
        (b"null", "its top level is a JSON null, not an object"),
        (b'{"revision": NaN}', "NaN is not a JSON number"),
        (b'{"instances": {"a": {}, "a": {}}}', "the key 'a' appears twice in one object"),
    ],
)
def test_unparseable_files(registry, content, says):
    os.makedirs(registry.meta_dir)
    write(registry.path, content)
    error = load_error(registry)
    [problem] = error.problems
    assert says in problem.message
    # No .bak: only reset is offered.
    assert error.lines() == [f"{registry.path}: {problem.message}; {NO_BAK_FIX}"]
    assert error.advise(boot_advice).lines() == [f"{registry.path}: {problem.message}; {BOOT_NO_BAK_FIX}"]
    assert read(registry.path) == content


def test_the_transaction_refuses_a_damaged_file_too(realistic):
    write(realistic.path, b"{")
    with pytest.raises(DataError):
        with realistic.transaction() as doc:
            doc["instances"]["x"] = instance()
    assert read(realistic.path) == b"{"


def test_schema_errors_are_all_listed_with_their_paths(realistic):
    doc = realistic.load()
    doc["claims"]["core-1"]["pid"] = 0
    del doc["claims"]["core-1"]["token"]
    doc["claims"]["cpu-1"] = claim(port=70000, container_id=None, lease_seconds=0)
    doc["instances"]["core-1"]["device"] = "gpu"
    doc["instances"]["Bad_Key"] = instance()
    doc["instances"]["cpu-1"]["claim_generation"] = -1
    doc["extra"] = True
    doc["revision"] = "7"
    write(realistic.path, json.dumps(doc).encode())
    error = load_error(realistic)
    assert error.lines()[0] == f"{realistic.path}: does not match the registry schema (9 problems):"
    listed = [line.strip() for line in error.lines()[1:-1]]
    assert sorted(listed) == sorted([
        "$: Additional properties are not allowed ('extra' was unexpected)",
        "$.revision: '7' is not of type 'integer'",
        "$.claims.core-1: 'token' is a required property",
        "$.claims.core-1.pid: 0 is less than the minimum of 1",
        "$.claims.cpu-1.port: 70000 is greater than the maximum of 65535",
        "$.claims.cpu-1.lease_seconds: 0 is less than or equal to the minimum of 0",
        "$.instances.core-1.device: 'gpu' is not one of ['auto', 'cuda', 'cpu']",
        "$.instances.cpu-1.claim_generation: -1 is less than the minimum of 0",
        "$.instances: key 'Bad_Key' is not a valid instance id (a DNS label: a-z, 0-9 and '-',"
        " 1 to 63 characters, starting and ending with a letter or digit)",
    ])
    assert error.lines()[-1] == f"fix: {BACKUP_FIX}"
    advised = error.advise(boot_advice).lines()
    assert advised[:-1] == error.lines()[:-1] and advised[-1] == f"fix: {BOOT_BACKUP_FIX}"


def test_odd_keys_are_quoted_in_paths(realistic):
    doc = realistic.load()
    doc["claims"]["core-1"]["pid"] = 0
    doc["instances"]["with space"] = {"created_at": 5, "claim_generation": 0}
    write(realistic.path, json.dumps(doc).encode())
    listed = [line.strip() for line in load_error(realistic).lines()[1:-1]]
    assert '$.instances["with space"].created_at: 5 is not of type \'string\'' in listed


def test_a_newer_schema_version_asks_for_an_upgrade(realistic):
    doc = realistic.load()
    doc["schema_version"] = 3
    doc["new_top_level_thing"] = {}
    write(realistic.path, json.dumps(doc).encode())
    error = load_error(realistic)
    newer = [
        f"{realistic.path}: written by a newer comfy-init (schema_version 3); this comfy-init"
        f" ({__version__}) reads schema_version 2 only; upgrade comfy-init (the image) everywhere this"
        " data directory is used; the file is fine: do not recover it"]
    assert isinstance(error, RegistryNewer) and not isinstance(error, RegistryDamaged)
    assert [p.kind for p in error.problems] == ["registry-newer"]
    assert error.lines() == newer
    # Recovery refuses to replace a file that is only newer.
    for mode in ("backup", "reset"):
        with pytest.raises(RegistryNewer) as caught:
            realistic.recover(mode)
        assert caught.value.exit_code == 65 and caught.value.lines() == newer
    assert json.loads(read(realistic.path)) == doc
    assert not [n for n in os.listdir(realistic.meta_dir) if ".corrupt-" in n]


def test_a_damaged_bak_is_named_in_the_fix(realistic):
    write(realistic.path, b"{}")
    write(realistic.backup_path, b"{")
    assert "(instance-registry.json.bak is damaged too)" in load_error(realistic).lines()[-1]


def corrupt_files(reg):
    return sorted(n for n in os.listdir(reg.meta_dir) if ".corrupt-" in n)


def test_recover_from_backup_keeps_the_bad_file_byte_for_byte(realistic):
    bak = json.loads(read(realistic.backup_path))
    bad = read(realistic.path)[:-40]
    write(realistic.path, bad)
    said = realistic.recover("backup")
    [kept] = corrupt_files(realistic)
    assert read(os.path.join(realistic.meta_dir, kept)) == bad
    assert kept.startswith("instance-registry.json.corrupt-")
    assert time.strptime(kept.rsplit("-", 1)[1], "%Y%m%dT%H%M%SZ")
    doc = realistic.load()
    assert doc["instances"] == bak["instances"] and doc["claims"] == bak["claims"]
    # The lost file was revision 3 (.bak + 1): the restored one comes after it.
    assert doc["revision"] == 4
    assert said == (f"restored {realistic.path} from instance-registry.json.bak (revision 2), written as"
                    f" revision 4; the bad file is kept as {kept}")
    # The .bak is still the good version it was.
    assert json.loads(read(realistic.backup_path)) == bak
    # Later transactions work as usual.
    with realistic.transaction() as d:
        d["instances"]["x"] = instance()
    assert realistic.load()["revision"] == 5


def test_recover_reset_keeps_the_bad_file_byte_for_byte(realistic):
    doc = realistic.load()
    doc["revision"] = 41
    doc["claims"]["core-1"]["pid"] = -5
    bad = json.dumps(doc, indent=1).encode()
    write(realistic.path, bad)
    said = realistic.recover("reset")
    [kept] = corrupt_files(realistic)
    assert read(os.path.join(realistic.meta_dir, kept)) == bad
    new = realistic.load()
    assert new["instances"] == {} and new["claims"] == {}
    assert new["revision"] == 42  # above the revision the bad file still shows
    assert said == (f"reset {realistic.path} to an empty registry (revision 42);"
                    f" the bad file is kept as {kept}")


def test_recover_never_overwrites_an_earlier_corrupt_file(realistic, monkeypatch):
    monkeypatch.setattr(registry_module, "utc_stamp", lambda: "20261128T070000Z")
    first = os.path.join(realistic.meta_dir, "instance-registry.json.corrupt-20261128T070000Z")
    write(first, b"an older damaged registry")
    write(realistic.path, b"{broken")
    realistic.recover("reset")
    write(realistic.path, b"{broken again")
    realistic.recover("backup")
    assert corrupt_files(realistic) == [
        "instance-registry.json.corrupt-20261128T070000Z",
        "instance-registry.json.corrupt-20261128T070000Z.1",
        "instance-registry.json.corrupt-20261128T070000Z.2",
    ]
    assert read(first) == b"an older damaged registry"
    assert read(first + ".1") == b"{broken"
    assert read(first + ".2") == b"{broken again"


def test_recover_backup_without_a_usable_bak_changes_nothing(realistic):
    write(realistic.path, b"{")
    os.unlink(realistic.backup_path)
    with pytest.raises(DataError) as caught:
        realistic.recover("backup")
    assert caught.value.exit_code == 65
    assert caught.value.lines() == [
        f"{realistic.backup_path}: cannot restore from instance-registry.json.bak: it does not exist;"
        " recover it with mode 'reset' to start an empty registry (instance-registry.json.bak does not exist);"
        " the bad file is kept as instance-registry.json.corrupt-<time>"]
    advised = caught.value.advise(lambda mode: f"set COMFY_REGISTRY_RECOVER={mode}")
    assert "set COMFY_REGISTRY_RECOVER=reset to start an empty registry" in advised.lines()[0]
    write(realistic.backup_path, b"[]")
    with pytest.raises(DataError, match="its top level is a JSON array"):
        realistic.recover("backup")
    assert read(realistic.path) == b"{"
    assert corrupt_files(realistic) == []


def test_recover_leaves_a_valid_or_missing_registry_alone(realistic, tmp_path):
    before = read(realistic.path)
    for mode in ("backup", "reset"):
        said = realistic.recover(mode)
        assert "is valid (revision 3): nothing to recover" in said
    assert read(realistic.path) == before
    assert corrupt_files(realistic) == []
    missing = registry_at(tmp_path / "elsewhere" / "meta")
    assert "nothing to recover" in missing.recover("reset")
    assert not (tmp_path / "elsewhere").exists()


def test_recover_rejects_an_unknown_mode(realistic):
    before = read(realistic.path)
    with pytest.raises(ComfyInitError) as caught:
        realistic.recover("yes")
    assert [p.kind for p in caught.value.problems] == ["usage"]
    assert caught.value.exit_code == 64
    assert caught.value.lines() == ["unknown recovery mode 'yes'; use 'backup' or 'reset'"]
    assert read(realistic.path) == before


def test_errors_are_comfy_init_errors_not_tracebacks(realistic):
    write(realistic.path, b"\x00" * 10)
    with pytest.raises(ComfyInitError):
        realistic.load()
