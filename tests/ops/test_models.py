"""models verify on a corpus of real model files: each fault found by its kind, --fix replaces
only identical copies (and keeps them in meta/trash), the hash cache makes a re-verify read nothing."""

import os

import blake3
import pytest

from comfy_init.ops.models import hashing
from comfy_init.ops.models.duplicates import duplicate_facts, find_duplicates, fix_duplicate
from comfy_init.ops.models.verify import verify_models
from tests.support.models import make_tree, safetensors_bytes, write

A, B = "core-a", "core-b"


def kinds_by_path(result):
    found = {}
    for problem in result.problems:
        found.setdefault(problem.path, set()).add(problem.kind)
    return found


def no_pause(_seconds):
    pass


@pytest.fixture
def tree(tmp_path):
    layout = make_tree(tmp_path / "data", A, B)
    models = layout.shared_models
    good = safetensors_bytes(5000, seed=1)
    paths = {
        "good": write(f"{models}/checkpoints/good.safetensors", good),
        "bin": write(f"{models}/upscale_models/plain.pth", b"P" * 3000),
        "truncated": write(f"{models}/checkpoints/truncated.safetensors", safetensors_bytes(5000, cut=7)),
        "longer": write(f"{models}/checkpoints/longer.safetensors", safetensors_bytes(5000, extra=3)),
        "zero": write(f"{models}/loras/zero.safetensors", b""),
        "wrong_length": write(f"{models}/vae/wrong.safetensors", safetensors_bytes(5000, header_length_delta=-5)),
        "huge_length": write(f"{models}/vae/huge.safetensors", safetensors_bytes(100, header_length_delta=10**6)),
        "part": write(f"{models}/loras/style.safetensors.part", b"x" * 100),
        "growing": write(f"{models}/checkpoints/big.safetensors", safetensors_bytes(400)),
        "dup": write(f"{layout.instance(A).custom_nodes}/node-x/models/good.safetensors", good),
        "unique": write(f"{layout.instance(A).custom_nodes}/node-x/models/same-size.safetensors",
                        safetensors_bytes(5000, seed=2)),
    }
    return layout, paths


def grow(*paths):
    def pause(_seconds):
        for path in paths:
            with open(path, "ab") as stream:
                stream.write(b"more")
    return pause


def test_every_fault_of_the_corpus_is_found_by_its_kind(tree):
    layout, paths = tree
    result = verify_models(layout, pause=grow(paths["growing"]), settle=0)
    found = kinds_by_path(result)
    assert found.pop(paths["truncated"]) == {"model-damaged"}
    assert found.pop(paths["longer"]) == {"model-damaged"}
    assert found.pop(paths["wrong_length"]) == {"model-damaged"}
    assert found.pop(paths["huge_length"]) == {"model-damaged"}
    assert found.pop(paths["zero"]) == {"model-incomplete"}
    assert found.pop(paths["part"]) == {"model-incomplete"}
    assert found.pop(paths["growing"]) == {"model-growing"}
    assert found.pop(paths["dup"]) == {"model-duplicate"}
    assert found == {}  # good, plain and the unique same-size file are sound
    assert result.exit_code == 65
    messages = {p.path: p.line() for p in result.problems}
    assert "truncated" in messages[paths["truncated"]] and "longer than its header says" in messages[paths["longer"]]
    assert "style.safetensors" in messages[paths["part"]] and "download" in messages[paths["part"]]
    assert result.data["found"]["model-damaged"] == 4 and result.data["instances"] == [A, B]


def test_a_sound_tree_is_ok_and_the_duplicate_names_the_shared_file_and_hash(tmp_path):
    layout = make_tree(tmp_path / "data", A)
    content = safetensors_bytes(3000)
    shared = write(f"{layout.shared_models}/loras/a.safetensors", content)
    assert verify_models(layout, settle=0, pause=no_pause).exit_code == 0
    copy = write(f"{layout.instance(A).custom_nodes}/n/models/a-copy.safetensors", content)
    (problem,) = find_duplicates(layout)
    assert (problem.kind, problem.path) == ("model-duplicate", copy)
    assert duplicate_facts(problem) == {"instance": A, "shared": shared, "blake3": blake3.blake3(content).hexdigest(),
                                        "size": len(content)}
    assert find_duplicates(layout, instance_ids=[]) == []


def test_fix_replaces_only_identical_copies_and_keeps_them_in_the_trash(tree):
    layout, paths = tree
    unique_before = os.stat(paths["unique"])
    result = verify_models(layout, fix=True, settle=0, pause=no_pause)
    assert paths["dup"] not in kinds_by_path(result)
    assert os.path.samefile(paths["dup"], paths["good"])  # a hard link of the shared file now
    (fixed,) = result.data["fixed"]
    assert fixed["path"] == paths["dup"] and fixed["kept"].startswith(layout.trash + os.sep)
    with open(fixed["kept"], "rb") as kept, open(paths["good"], "rb") as good:
        assert kept.read() == good.read()
    assert not os.path.samefile(fixed["kept"], paths["good"])  # the copy's own inode, kept
    after = os.stat(paths["unique"])
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (unique_before.st_ino, unique_before.st_size,
                                                                unique_before.st_mtime_ns)
    again = verify_models(layout, settle=0, pause=no_pause)
    assert "model-duplicate" not in {p.kind for p in again.problems}


def test_fix_refuses_a_copy_that_changed_since_it_was_found(tmp_path):
    layout = make_tree(tmp_path / "data", A)
    content = safetensors_bytes(3000)
    write(f"{layout.shared_models}/loras/a.safetensors", content)
    copy = write(f"{layout.instance(A).custom_nodes}/n/models/a.safetensors", content)
    (problem,) = find_duplicates(layout)
    write(copy, safetensors_bytes(3000, seed=9))  # same size, other bytes
    outcome = fix_duplicate(layout, problem)
    assert outcome.problem is not None and "no longer identical" in outcome.problem.message
    with open(copy, "rb") as stream:
        assert stream.read() == safetensors_bytes(3000, seed=9)
    assert not os.path.exists(layout.trash)


def test_two_downloads_of_one_model_at_once(tree):
    layout, paths = tree
    other = write(f"{layout.shared_models}/loras/.style.safetensors.tmp-77-ab", b"y" * 10)
    result = verify_models(layout, pause=grow(paths["part"], other), settle=0)
    (problem,) = [p for p in result.problems if p.kind == "model-concurrent-download"]
    assert {problem.path, problem.details[0].removeprefix("also: ")} == {paths["part"], other}
    assert "style.safetensors" in problem.message
    assert not any(p.kind == "model-incomplete" and p.path in (paths["part"], other) for p in result.problems)


def test_a_file_that_changes_while_it_is_hashed_is_growing(tmp_path, monkeypatch):
    layout = make_tree(tmp_path / "data", A)
    path = write(f"{layout.shared_models}/checkpoints/x.ckpt", b"z" * 10_000)
    real = hashing.hash_file

    def appending(file_path, info=None, progress=None):
        with open(file_path, "ab") as stream:
            stream.write(b"!")
        return real(file_path, info, progress)

    monkeypatch.setattr(hashing, "hash_file", appending)
    result = verify_models(layout, settle=0, pause=no_pause)
    assert kinds_by_path(result) == {path: {"model-growing"}}
    assert result.exit_code == 75


def test_reverifying_an_unchanged_tree_reads_no_file(tree, monkeypatch):
    layout, paths = tree
    first = verify_models(layout, settle=0, pause=no_pause)
    assert first.data["hashed_files"] == 5  # good, plain, unique, dup, growing: every sound file

    def refuse(*_args, **_kwargs):
        raise AssertionError("a file was read")

    monkeypatch.setattr(hashing, "hash_file", refuse)
    monkeypatch.setattr("comfy_init.ops.models.checks.safetensors_damage", refuse)
    second = verify_models(layout, settle=0, pause=no_pause)
    assert second.data["hashed_files"] == 0
    assert [(p.kind, p.path) for p in second.problems] == [(p.kind, p.path) for p in first.problems]


def test_a_changed_file_is_hashed_again(tmp_path):
    layout = make_tree(tmp_path / "data", A)
    path = write(f"{layout.shared_models}/checkpoints/x.safetensors", safetensors_bytes(2000))
    assert verify_models(layout, settle=0, pause=no_pause).data["hashed_files"] == 1
    write(path, safetensors_bytes(2000, cut=1))
    result = verify_models(layout, settle=0, pause=no_pause)
    assert kinds_by_path(result) == {path: {"model-damaged"}}


def test_instances_must_resolve_their_models_to_shared(tmp_path):
    layout = make_tree(tmp_path / "data", A, B, "core-c")
    content = safetensors_bytes(1000)
    write(f"{layout.shared_models}/vae/v.safetensors", content)
    a, b, c = (layout.instance(i) for i in (A, B, "core-c"))
    os.unlink(a.models)
    planted = write(f"{a.models}/vae/v.safetensors", content)  # a real folder where the link belongs
    os.unlink(b.models)
    os.symlink("../../shared/input", b.models)
    write(c.extra_model_paths, b"comfyui:\n  base_path: .\n  loras: |\n    my-loras\n    ../../shared/models/loras\n"
                               b"  vae: /nowhere/vae\n")
    own = write(f"{c.root}/my-loras/l.safetensors", content)
    result = verify_models(layout, settle=0, pause=no_pause)
    found = kinds_by_path(result)
    assert found[a.models] == {"model-path-unshared"} and found[b.models] == {"model-path-unshared"}
    assert found[planted] == {"model-duplicate"} and found[own] == {"model-duplicate"}
    lines = [p.line() for p in result.problems if p.path == c.extra_model_paths]
    assert len(lines) == 2 and any("comfyui.loras" in line and "inside the instance" in line for line in lines)
    assert any("comfyui.vae" in line and "/nowhere/vae" in line for line in lines)
    only_a = verify_models(layout, [A], settle=0, pause=no_pause)
    assert {p.path for p in only_a.problems} == {a.models, planted}


def test_unreadable_extra_model_paths_and_unknown_instances(tmp_path):
    layout = make_tree(tmp_path / "data", A)
    write(layout.instance(A).extra_model_paths, b"comfyui:\n  loras models/loras\n")
    result = verify_models(layout, settle=0, pause=no_pause)
    (problem,) = result.problems
    assert problem.kind == "invalid-data" and "line 2" in problem.message and result.exit_code == 65
    assert verify_models(layout, ["core-zz"]).exit_code == 66
    assert verify_models(layout, ["Bad_Id"]).exit_code == 64


def test_a_hard_linked_copy_is_no_duplicate_and_links_are_not_followed(tmp_path):
    layout = make_tree(tmp_path / "data", A)
    shared = write(f"{layout.shared_models}/loras/a.safetensors", safetensors_bytes(1000))
    node = f"{layout.instance(A).custom_nodes}/n/models"
    os.makedirs(node)
    os.link(shared, f"{node}/a.safetensors")
    os.symlink(shared, f"{node}/b.safetensors")
    assert find_duplicates(layout) == []
    assert verify_models(layout, settle=0, pause=no_pause).problems == []


def test_the_entries_of_removed_files_leave_the_cache(tmp_path):
    import json

    layout = make_tree(tmp_path / "data", A)
    keep = write(f"{layout.shared_models}/loras/keep.safetensors", safetensors_bytes(100))
    gone = write(f"{layout.shared_models}/loras/gone.safetensors", safetensors_bytes(200))
    verify_models(layout, settle=0, pause=no_pause)
    with open(layout.model_hash_cache) as stream:
        assert sorted(json.load(stream)["dirs"]["shared/models/loras"]) == ["gone.safetensors", "keep.safetensors"]
    os.unlink(gone)
    assert verify_models(layout, settle=0, pause=no_pause).data["hashed_files"] == 0
    with open(layout.model_hash_cache) as stream:
        assert json.load(stream)["dirs"].keys() == {os.path.dirname(os.path.relpath(keep, layout.data))}
    with open(layout.model_hash_cache) as stream:
        assert list(json.load(stream)["dirs"]["shared/models/loras"]) == ["keep.safetensors"]


def test_progress_is_told_of_every_hashed_byte_and_an_unwritable_cache_only_warns(tmp_path):
    layout = make_tree(tmp_path / "data", A)
    write(f"{layout.shared_models}/checkpoints/a.ckpt", b"a" * 3_000_000)
    write(f"{layout.shared_models}/checkpoints/b.ckpt", b"b" * 1000)
    os.mkdir(layout.model_hash_cache_lock)  # the lock cannot be opened: the cache cannot be written
    calls = []
    result = verify_models(layout, progress=lambda files, total: calls.append((files, total)), settle=0,
                           pause=no_pause)
    assert result.exit_code == 0 and calls and calls[-1][1] == 3_001_000
    assert any(line.startswith("warning: the hash cache was not saved") for line in result.lines)
    assert not os.path.exists(layout.model_hash_cache)


def test_the_yaml_files_comfyui_reads_the_checkouts_and_those_cli_args_name(tmp_path):
    from comfy_init.store.registry import Registry

    layout = make_tree(tmp_path / "data", A, B)
    with Registry(layout).transaction() as document:
        document["instances"][A]["cli_args"] = ["--lowvram", "--extra-model-paths-config", "/data/instances/core-a/cfg/p.yaml"]
    named = write(f"{layout.instance(A).root}/cfg/p.yaml", b"mine:\n  vae: /mnt/other/vae\n")
    app = tmp_path / "app"
    checkout_yaml = write(app / "extra_model_paths.yaml", b"nas:\n  base_path: /mnt/nas\n  checkpoints: ckpt\n"
                                                          b"  custom_nodes: nodes\n")
    result = verify_models(layout, settle=0, pause=no_pause, app_dir=str(app))
    found = [(p.path, p.message) for p in result.problems]
    assert (named, "mine.vae resolves to /mnt/other/vae, outside shared/models") in found
    assert [f for f in found if f[0] == checkout_yaml] == [
        (checkout_yaml, "nas.checkpoints resolves to /mnt/nas/ckpt, outside shared/models")]  # once, not per instance
    assert verify_models(layout, [B], settle=0, pause=no_pause).problems == []  # no app_dir, nothing named


def test_across_filesystems_nothing_is_changed_and_the_problem_says_so(tmp_path, monkeypatch):
    import errno

    layout = make_tree(tmp_path / "data", A)
    content = safetensors_bytes(3000)
    write(f"{layout.shared_models}/loras/a.safetensors", content)
    copy = write(f"{layout.instance(A).custom_nodes}/n/models/a, shared file: odd.safetensors", content)
    (problem,) = find_duplicates(layout)
    assert duplicate_facts(problem)["shared"].endswith("loras/a.safetensors")
    before = os.stat(copy)

    def cross_device(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link", source)

    monkeypatch.setattr(os, "link", cross_device)
    outcome = fix_duplicate(layout, problem)
    assert outcome.problem is not None and "another filesystem" in outcome.problem.message
    assert "ln -f" in outcome.problem.fix and os.stat(copy).st_ino == before.st_ino
    leftovers = [name for name in os.listdir(os.path.dirname(copy)) if name.startswith(".")]
    assert leftovers == []


def test_the_fixer_in_checks_shape_says_what_it_did_or_raises(tmp_path):
    from comfy_init.errors import ComfyInitError
    from comfy_init.ops.models.duplicates import fix_for_check

    layout = make_tree(tmp_path / "data", A)
    content = safetensors_bytes(3000)
    shared = write(f"{layout.shared_models}/loras/a.safetensors", content)
    copy = write(f"{layout.instance(A).custom_nodes}/n/models/a.safetensors", content)
    other = write(f"{layout.instance(A).custom_nodes}/n/models/b.safetensors", content)
    first, second = find_duplicates(layout)
    line = fix_for_check(layout, first)
    assert line.startswith(f"replaced {first.path} with a hard link of {shared}") and "meta/trash" in line
    assert fix_for_check(layout, first) is None  # nothing left to do
    write(second.path, safetensors_bytes(3000, seed=5))
    with pytest.raises(ComfyInitError) as refused:
        fix_for_check(layout, second)
    assert refused.value.problems[0].path == second.path and {copy, other} == {first.path, second.path}


def test_verifying_one_instance_keeps_the_cache_entries_of_the_others(tmp_path):
    import json

    layout = make_tree(tmp_path / "data", A, B)
    write(f"{layout.shared_models}/loras/s.safetensors", safetensors_bytes(100))
    write(f"{layout.instance(A).custom_nodes}/n/models/a.pt", b"a" * 10)
    write(f"{layout.instance(B).custom_nodes}/n/models/b.pt", b"b" * 10)
    verify_models(layout, settle=0, pause=no_pause)
    verify_models(layout, [A], settle=0, pause=no_pause)
    with open(layout.model_hash_cache) as stream:
        dirs = json.load(stream)["dirs"]
    assert f"instances/{B}/custom_nodes/n/models" in dirs and f"instances/{A}/custom_nodes/n/models" in dirs
