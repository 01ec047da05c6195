"""Snapshots end to end: round trip of a live instance, every malicious member refused with 65
and nothing written, damaged archives, clones, git nodes as refs, gzip archives, prune/delete."""

import json
import os
import sqlite3
import tarfile

import pytest
from click.testing import CliRunner

from comfy_init.cli.main import cli
from comfy_init.layout import Layout
from comfy_init.store.registry import Registry
from tests.support import snapshots as support
from tests.support.treesnap import snapshot as tree_state

ID = "core-7"


def run(data, *args):
    result = CliRunner().invoke(cli, [*args, "--data", str(data), "--json"])
    document = json.loads(result.output)
    assert document["exit_code"] == result.exit_code, result.output
    return document


@pytest.fixture
def data(tmp_path):
    data = tmp_path / "data"
    assert run(data, "instance", "create", ID)["exit_code"] == 0
    return data


@pytest.fixture
def instance(data, tmp_path):
    root = data / "instances" / ID
    support.populate(root, tmp_path / "remotes")
    return root


def snapshot_dir(data, instance_id=ID):
    return data / "meta" / "backup-snapshots" / instance_id


def test_round_trip_of_a_live_instance_restores_exactly_what_the_manifest_says(data, instance, tmp_path):
    database = instance / "user" / "comfyui.db"
    writer = support.start_live_writer(data / "meta" / "locks" / f"{ID}.lock", database)
    try:
        created = run(data, "snapshot", "create", ID, "--note", "round trip")
        assert created["exit_code"] == 0, created
    finally:
        writer.kill()
        writer.wait()
    assert created["data"]["live"] is True
    manifest = run(data, "snapshot", "show", created["data"]["name"])["data"]["manifest"]
    assert manifest["live"] and manifest["note"] == "round trip" and manifest["variant"] == "core"
    assert manifest["config"]["port"] == Registry(Layout(str(data))).load()["instances"][ID]["port"]
    assert {n["path"] for n in manifest["git_nodes"]} == {"custom_nodes/ComfyUI-Alpha", "custom_nodes/beta-nodes"}
    assert all(n["remote"].startswith("file://") and len(n["commit"]) == 40 for n in manifest["git_nodes"])
    paths = {e["path"] for e in manifest["entries"]}
    assert "user/comfyui.db" in paths and "user/comfyui.db-wal" not in paths
    assert not any(p.startswith(("temp", "output", "models", "input")) for p in paths)
    # damage it
    (instance / "custom_nodes" / "plain_node" / "data" / "weights.bin").write_bytes(b"broken")
    (instance / "user" / "default" / "comfy.settings.json").unlink()
    (instance / "custom_nodes" / "stray.py").write_text("stray")
    os.unlink(instance / "custom_nodes" / "plain_node" / "latest")
    restored = run(data, "snapshot", "restore", created["data"]["name"], "--yes")
    assert restored["exit_code"] == 0, restored
    assert support.tree_entries(instance) == support.manifest_entries(manifest)
    with sqlite3.connect(database) as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        assert db.execute("select count(*) from assets").fetchone()[0] >= 200
    assert (instance / "output" / "ComfyUI_00001_.png").exists()  # kept: output was not in the snapshot
    assert os.readlink(instance / "models") == "../../shared/models" and (instance / "temp").is_dir()
    pre = restored["data"]["pre_restore"]
    assert run(data, "snapshot", "show", pre)["data"]["manifest"]["kind"] == "pre-restore"
    assert os.path.isdir(restored["data"]["replaced_moved_to"])
    assert not [n for n in os.listdir(data / "instances") if n.startswith(".")]


def test_undo_a_restore_by_restoring_the_pre_restore_snapshot(data, instance):
    first = run(data, "snapshot", "create", ID)["data"]
    (instance / "user" / "default" / "comfy.settings.json").write_text('{"changed": true}')
    before = support.tree_entries(instance)
    restored = run(data, "snapshot", "restore", first["name"], "--yes")["data"]
    assert support.tree_entries(instance) != before
    assert run(data, "snapshot", "restore", restored["pre_restore"], "--yes")["exit_code"] == 0
    assert support.tree_entries(instance) == before


def test_verify_checks_every_hash_and_a_flipped_byte_or_truncation_is_65(data, instance):
    created = run(data, "snapshot", "create", ID, "--include-output")["data"]
    verified = run(data, "snapshot", "verify", created["name"])
    assert verified["exit_code"] == 0 and verified["data"]["files"] == created["files"]
    archive = created["archive"]
    whole = open(archive, "rb").read()
    with open(archive, "wb") as file:
        file.write(whole[: len(whole) // 2])
    document = run(data, "snapshot", "verify", created["name"])
    assert (document["exit_code"], document["problems"][0]["kind"]) == (65, "snapshot-damaged")
    damaged = bytearray(whole)
    damaged[len(whole) // 2] ^= 0xFF
    open(archive, "wb").write(bytes(damaged))
    assert run(data, "snapshot", "verify", created["name"])["exit_code"] == 65
    state = tree_state(data / "instances")
    assert run(data, "snapshot", "restore", created["name"], "--yes")["exit_code"] == 65
    assert tree_state(data / "instances") == state


def test_a_member_that_disagrees_with_the_manifest_is_65(data, instance, tmp_path):
    created = run(data, "snapshot", "create", ID)["data"]
    manifest = json.loads(open(created["manifest"]).read())
    manifest.pop("archive_bytes")
    manifest["entries"][-1]["blake3"] = "0" * 64
    members = [support.member(e["path"], tarfile.DIRTYPE, mode=e["mode"]) if e["type"] == "dir" else
               support.member(e["path"], tarfile.SYMTYPE, linkname=e["target"]) if e["type"] == "symlink" else
               support.member(e["path"], mode=e["mode"], data=(data / "instances" / ID / e["path"]).read_bytes())
               for e in manifest["entries"]]
    members.append(support.member("manifest.json", data=json.dumps(manifest).encode()))
    support.write_archive(snapshot_dir(data) / "20990101T000000Z-deadbeef.tar.zst", members)
    document = run(data, "snapshot", "verify", "20990101T000000Z-deadbeef")
    assert document["exit_code"] == 65 and "differ from the manifest" in "\n".join(document["problems"][0]["details"])


DIR = tarfile.DIRTYPE
MALICIOUS = {
    "absolute": [support.member("/tmp/evil")],
    "dot-dot": [support.member("custom_nodes", DIR, mode=0o755), support.member("custom_nodes/../../evil")],
    "outside-own-folders": [support.member("temp", DIR, mode=0o755)],
    "link-out": [support.member("custom_nodes", DIR, mode=0o755),
                 support.member("custom_nodes/l", tarfile.SYMTYPE, linkname="../../../etc")],
    "absolute-link": [support.member("custom_nodes", DIR, mode=0o755),
                      support.member("custom_nodes/l", tarfile.SYMTYPE, linkname="/etc")],
    "link-out-through-a-later-link": [
        support.member("custom_nodes", DIR, mode=0o755),
        support.member("custom_nodes/a", tarfile.SYMTYPE, linkname="l/../.."),
        support.member("custom_nodes/l", tarfile.SYMTYPE, linkname="../user")],
    "write-through-a-link": [support.member("custom_nodes", DIR, mode=0o755),
                             support.member("custom_nodes/l", tarfile.SYMTYPE, linkname="../user"),
                             support.member("custom_nodes/l/x.py", data=b"x")],
    "hard-link-outside": [support.member("custom_nodes", DIR, mode=0o755),
                          support.member("custom_nodes/h", tarfile.LNKTYPE, linkname="/etc/passwd")],
    "hard-link-to-missing": [support.member("custom_nodes", DIR, mode=0o755),
                             support.member("custom_nodes/h", tarfile.LNKTYPE, linkname="user/not-in-archive")],
    "char-device": [support.member("custom_nodes", DIR, mode=0o755), support.member("custom_nodes/d", tarfile.CHRTYPE)],
    "block-device": [support.member("custom_nodes", DIR, mode=0o755), support.member("custom_nodes/d", tarfile.BLKTYPE)],
    "fifo": [support.member("custom_nodes", DIR, mode=0o755), support.member("custom_nodes/f", tarfile.FIFOTYPE)],
    "unknown-type": [support.member("custom_nodes", DIR, mode=0o755), support.member("custom_nodes/s", b"Z")],
    "setuid": [support.member("custom_nodes", DIR, mode=0o755),
               support.member("custom_nodes/su", mode=0o4755, data=b"#!/bin/sh\n")],
    "setgid-dir": [support.member("custom_nodes", DIR, mode=0o2755)],
    "duplicate": [support.member("custom_nodes", DIR, mode=0o755), support.member("custom_nodes", DIR, mode=0o755)],
    "no-manifest": [support.member("custom_nodes", DIR, mode=0o755), support.member("custom_nodes/x.py", data=b"x")],
    "not-an-archive": None,
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
@pytest.mark.parametrize("compress", [True, False], ids=["zst", "plain-tar"])
def test_a_malicious_archive_is_refused_with_65_and_nothing_written(data, instance, case, compress):
    archive = snapshot_dir(data) / "20990101T000000Z-0badc0de.tar.zst"
    archive.parent.mkdir(parents=True, exist_ok=True)
    if MALICIOUS[case] is None:
        archive.write_bytes(os.urandom(3000))
    else:
        support.write_archive(archive, MALICIOUS[case], compress=compress)
    (data / "meta" / "locks" / f"{ID}.lock").touch()  # there once the instance has run: a restore takes it
    before = tree_state(data)
    document = run(data, "snapshot", "restore", "20990101T000000Z-0badc0de", "--yes")
    assert document["exit_code"] == 65, document
    assert document["problems"][0]["kind"] in ("unsafe-member", "snapshot-damaged")
    assert tree_state(data) == before  # nothing written anywhere: no staging, no pre-restore, no trash
    assert run(data, "snapshot", "verify", "20990101T000000Z-0badc0de")["exit_code"] == 65


def test_a_running_instance_is_not_restored_75(data, instance):
    name = run(data, "snapshot", "create", ID)["data"]["name"]
    writer = support.start_live_writer(data / "meta" / "locks" / f"{ID}.lock", instance / "user" / "comfyui.db")
    try:
        (instance / "custom_nodes" / "new.py").write_text("not in the snapshot")
        before = support.tree_entries(instance, ("custom_nodes",))  # user/ has the writer's database
        document = run(data, "snapshot", "restore", name, "--yes")
    finally:
        writer.kill()
        writer.wait()
    assert (document["exit_code"], document["problems"][0]["kind"]) == (75, "instance-held")
    assert support.tree_entries(instance, ("custom_nodes",)) == before
    assert not [n for n in os.listdir(data / "instances") if n.startswith(".")]


def test_restore_to_a_new_id_clones_the_instance_and_registers_it(data, instance):
    created = run(data, "snapshot", "create", ID, "--include-output")["data"]
    document = run(data, "snapshot", "restore", created["name"], "--to", "clone-1", "--yes")
    assert document["exit_code"] == 0, document
    clone = data / "instances" / "clone-1"
    manifest = run(data, "snapshot", "show", created["name"])["data"]["manifest"]
    assert support.tree_entries(clone, ("custom_nodes", "user", "output")) == support.manifest_entries(manifest)
    entries = Registry(Layout(str(data))).load()["instances"]
    assert entries["clone-1"]["variant"] == "core" and entries["clone-1"]["port"] != entries[ID]["port"]
    assert document["data"]["pre_restore"] is None
    assert run(data, "instance", "list")["data"]["instances"][1]["id"] == "core-7"  # no staging rows


def test_nodes_as_refs_clones_git_checkouts_at_their_commit(data, instance):
    name = run(data, "snapshot", "create", ID)["data"]["name"]
    document = run(data, "snapshot", "restore", name, "--to", "refs-1", "--nodes-as-refs", "--yes")
    assert document["exit_code"] == 0, document
    assert sorted(document["data"]["cloned"]) == ["custom_nodes/ComfyUI-Alpha", "custom_nodes/beta-nodes"]
    node = data / "instances" / "refs-1" / "custom_nodes" / "ComfyUI-Alpha"
    assert support.git("rev-parse", "HEAD", cwd=node) == support.git("rev-parse", "HEAD", cwd=instance / "custom_nodes" / "ComfyUI-Alpha")
    assert (node / "js" / "alpha.js").read_text() == "export {}\n"


def test_a_gzip_archive_is_read_too(data, instance):
    import gzip

    created = run(data, "snapshot", "create", ID)["data"]
    import zstandard

    tar_bytes = zstandard.ZstdDecompressor().stream_reader(open(created["archive"], "rb")).read()
    target = snapshot_dir(data) / f"{created['name'][:-8]}feedf00d.tar.gz"
    target.write_bytes(gzip.compress(tar_bytes))
    assert run(data, "snapshot", "verify", target.name[:-7])["exit_code"] == 0
    assert run(data, "snapshot", "restore", str(target), "--to", "gz-1", "--yes")["exit_code"] == 0


def test_list_prune_and_delete(data, instance):
    names = [run(data, "snapshot", "create", ID, "--note", str(i))["data"]["name"] for i in range(3)]
    rows = run(data, "snapshot", "list", ID)["data"]["snapshots"]
    assert [r["name"] for r in rows] == names and [r["note"] for r in rows] == ["0", "1", "2"]
    pruned = run(data, "snapshot", "prune", ID, "--keep", "1")
    assert len(pruned["data"]["removed"]) == 2
    assert [r["name"] for r in run(data, "snapshot", "list")["data"]["snapshots"]] == names[2:]
    assert run(data, "snapshot", "delete", f"{ID}/{names[2]}")["exit_code"] == 0
    assert os.listdir(snapshot_dir(data)) == [".lock"]
    document = run(data, "snapshot", "delete", names[2])
    assert (document["exit_code"], document["problems"][0]["kind"]) == (66, "unknown-snapshot")
    assert run(data, "snapshot", "show", "nope")["exit_code"] == 66
    assert run(data, "snapshot", "create", "nope-1")["exit_code"] == 66
    assert run(data, "snapshot", "create", "Bad_Id")["exit_code"] == 64


def test_instance_delete_snapshots_first_unless_told_not_to(data, instance, tmp_path):
    document = run(data, "instance", "delete", ID, "--yes")
    assert document["exit_code"] == 0 and document["data"]["snapshot"] and os.path.isdir(document["data"]["trash"])
    assert run(data, "snapshot", "show", document["data"]["snapshot"])["data"]["manifest"]["kind"] == "pre-delete"
    restored = run(data, "snapshot", "restore", ID, "--yes")  # the newest snapshot of core-7
    assert restored["exit_code"] == 0 and ID in Registry(Layout(str(data))).load()["instances"]
    assert run(data, "instance", "create", "other-1")["exit_code"] == 0
    document = run(data, "instance", "delete", "other-1", "--yes", "--no-snapshot")
    assert document["exit_code"] == 0 and document["data"]["snapshot"] is None
    assert not snapshot_dir(data, "other-1").exists()


def test_the_manifest_names_comfyui_and_pip_freeze_when_reachable(data, instance, monkeypatch):
    import sys

    from tests.support.standin import STANDIN_DIR

    monkeypatch.setenv("COMFY_APP_DIRECTORY", str(STANDIN_DIR))
    monkeypatch.setenv("COMFY_PYTHON", sys.executable)
    name = run(data, "snapshot", "create", ID)["data"]["name"]
    manifest = run(data, "snapshot", "show", name)["data"]["manifest"]
    assert manifest["comfyui_version"] == "0.3.64-standin"
    assert manifest["pip_freeze"]["python"] == sys.executable
    assert any(line.lower().startswith("zstandard==") for line in manifest["pip_freeze"]["packages"])
    monkeypatch.delenv("COMFY_PYTHON")
    name = run(data, "snapshot", "create", ID)["data"]["name"]
    assert run(data, "snapshot", "show", name)["data"]["manifest"]["pip_freeze"] is None


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_restored_files_belong_to_puid_and_pgid_as_run_gives_them(data, instance, monkeypatch):
    name = run(data, "snapshot", "create", ID)["data"]["name"]
    monkeypatch.setenv("PUID", "4321")
    monkeypatch.setenv("PGID", "4322")
    assert run(data, "snapshot", "restore", name, "--to", "owned-1", "--yes")["exit_code"] == 0
    root = data / "instances" / "owned-1"
    owners = {(os.lstat(p).st_uid, os.lstat(p).st_gid) for p in [root, *root.joinpath("custom_nodes").rglob("*"),
                                                                  *root.joinpath("user").rglob("*")]}
    assert owners == {(4321, 4322)}


def test_a_delete_whose_snapshot_fails_is_74_and_deletes_nothing(data, instance, monkeypatch):
    import errno

    from comfy_init.ops.snapshot import create

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(snapshot_dir(data)))

    monkeypatch.setattr(create, "take_snapshot", full)
    document = run(data, "instance", "delete", ID, "--yes")
    assert (document["exit_code"], document["problems"][0]["kind"]) == (74, "io-error")
    assert "--no-snapshot" in document["problems"][0]["fix"]
    assert instance.is_dir() and ID in Registry(Layout(str(data))).load()["instances"]


def test_the_swap_is_one_atomic_exchange(tmp_path):
    from comfy_init.ops.snapshot.restore import swap_in

    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "N").touch()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "O").touch()
    replaced = swap_in(str(tmp_path / "new"), str(tmp_path / "old"))
    assert replaced == str(tmp_path / "new")  # RENAME_EXCHANGE: no instant without the directory
    assert os.listdir(tmp_path / "old") == ["N"] and os.listdir(tmp_path / "new") == ["O"]
    assert swap_in(str(tmp_path / "new"), str(tmp_path / "fresh")) is None
    assert os.listdir(tmp_path / "fresh") == ["O"]
