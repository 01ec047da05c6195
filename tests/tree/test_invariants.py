"""tree.invariants: each isolation invariant broken on a real tree (made by the planner and applier
`run` uses), and each way a claim stops being ours, judged against real locks."""

import os
import shutil
import subprocess
import sys

import pytest

from comfy_init.layout import Layout
from comfy_init.store import locks
from comfy_init.store.hostid import identity
from comfy_init.tree.apply import apply_steps
from comfy_init.tree.invariants import claim_problems, isolation_problems
from comfy_init.tree.planner import plan_tree
from tests.support.registry_data import claim, flock_held_elsewhere


@pytest.fixture
def tree(tmp_path):
    """Instances a and b, prepared as `run` prepares them; returns (layout, a, b)."""
    layout = Layout(str(tmp_path / "data"))
    for instance_id in ("a", "b"):
        apply_steps(plan_tree(layout, layout.instance(instance_id), multi=True), layout.data)
    return layout, layout.instance("a"), layout.instance("b")


def found(layout, instance):
    return [(p.kind, p.path) for p in isolation_problems(layout, instance)]


def relink(path, target):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)
    os.symlink(target, path)


def test_a_prepared_tree_has_no_finding(tree):
    layout, a, b = tree
    assert found(layout, a) == [] and found(layout, b) == []


@pytest.mark.parametrize("folder, target, phrase", [
    ("temp", "../b/temp", "instance 'b'"),
    ("user", "../b/user", "instance 'b'"),
    ("output", "../../shared/input", "shared/"),
    ("custom_nodes", "../../meta/shared-configs", "meta/"),
    ("temp", "output", "output/"),
])
def test_an_own_folder_resolving_elsewhere_is_a_shared_folder(tree, folder, target, phrase):
    layout, a, _ = tree
    relink(a.folder(folder), target)
    problems = isolation_problems(layout, a)
    also = [("shared-folder", a.database)] if folder == "user" else []  # the database lives in user/
    assert [(p.kind, p.path) for p in problems] == [("shared-folder", a.folder(folder))] + also
    assert phrase in problems[0].message and problems[0].exit_code == 65


def test_the_database_linked_to_another_instance(tree):
    layout, a, b = tree
    open(b.database, "w").close()
    os.symlink(os.path.relpath(b.database, a.user), a.database)
    problems = isolation_problems(layout, a)
    assert [(p.kind, p.path) for p in problems] == [("shared-folder", a.database)]
    assert "share one database" in problems[0].message


def test_the_instance_directory_itself_resolving_into_another(tree):
    layout, a, _ = tree
    relink(a.root, "b")
    problems = isolation_problems(layout, a)
    assert [(p.kind, p.path) for p in problems] == [("shared-folder", a.root)]
    assert "instance 'b'" in problems[0].message


def test_the_models_link_replaced_removed_or_made_a_folder(tree):
    layout, a, _ = tree
    relink(a.models, "../b/output")
    assert found(layout, a) == [("wrong-link", a.models)]
    os.unlink(a.models)
    assert found(layout, a) == [("missing-path", a.models)]
    os.mkdir(a.models)
    assert found(layout, a) == [("link-expected", a.models)]
    os.rmdir(a.models)
    os.symlink(layout.shared_models, a.models)  # absolute, but the same place: fine
    assert found(layout, a) == []


def test_the_input_link_into_another_instance(tree):
    layout, a, _ = tree
    relink(a.input, "../b/output")
    assert found(layout, a) == [("wrong-link", a.input)]


def test_swapped_instance_directories_are_told_by_their_owner_files(tree):
    layout, a, b = tree
    os.rename(a.root, a.root + ".x")
    os.rename(b.root, a.root)
    os.rename(a.root + ".x", b.root)
    assert found(layout, a) == [("shared-folder", a.owner_file)]
    assert "names instance 'b'" in isolation_problems(layout, a)[0].message
    os.unlink(b.owner_file)
    assert found(layout, b) == [("missing-path", b.owner_file)]


# -- the claim ------------------------------------------------------------------------------------

def our_claim(**extra):
    me = identity()
    return claim(**{"host": me["host"], "boot_id": me["boot_id"], "container_id": me["container_id"], **extra})


def test_no_record_is_a_lost_claim(tree):
    layout, _, _ = tree
    problems = claim_problems(layout, "a", {"claims": {}})
    assert [p.kind for p in problems] == ["claim-lost"] and problems[0].exit_code == 75
    assert "no claim in the registry" in problems[0].message


def test_with_a_token_only_the_token_counts(tree):
    layout, _, _ = tree
    document = {"claims": {"a": claim(token="ours", host="elsewhere")}}
    assert claim_problems(layout, "a", document, token="ours") == []
    problems = claim_problems(layout, "a", document, token="theirs")
    assert [p.kind for p in problems] == ["claim-lost"] and "held by elsewhere" in problems[0].message


def test_a_claim_of_another_host_or_container_is_not_ours(tree):
    layout, _, _ = tree
    for record in (claim(host="far-node"), our_claim(container_id="0123456789ab"), our_claim(boot_id="x")):
        problems = claim_problems(layout, "a", {"claims": {"a": record}})
        assert [p.kind for p in problems] == ["claim-lost"], record


def test_our_claim_with_a_free_lock_is_a_gone_holder(tree):
    layout, _, _ = tree
    problems = claim_problems(layout, "a", {"claims": {"a": our_claim(pid=4242)}})
    assert [p.kind for p in problems] == ["claim-lost"] and "lock is free" in problems[0].message
    assert "pid 4242" in problems[0].message


def test_our_claim_held_by_its_pid_is_fine_and_by_another_pid_is_not(tree):
    layout, _, _ = tree
    path = layout.lock_path("a")
    with flock_held_elsewhere(path):
        holder = locks.holder_pid(path)
        assert holder is not None
        assert claim_problems(layout, "a", {"claims": {"a": our_claim(pid=holder)}}) == []
        problems = claim_problems(layout, "a", {"claims": {"a": our_claim(pid=holder + 100000)}})
        assert [p.kind for p in problems] == ["claim-lost"]
        assert f"held by pid {holder}" in problems[0].message


_HOLD_WITH_A_THREAD = """
import fcntl, sys, threading
lock = open(sys.argv[1], "a+")
fcntl.flock(lock, fcntl.LOCK_EX)
done = threading.Event()
worker = threading.Thread(target=done.wait)
worker.start()
print(worker.native_id, flush=True)
sys.stdin.read()
done.set()
"""


def test_a_claim_naming_a_thread_of_the_holder_is_not_the_holder(tree):
    """/proc/<tid> exists for every thread (with its process's fds), so a claim whose pid is one of
    the holder's thread ids looked held by it; comfy-init itself runs several threads."""
    layout, _, _ = tree
    path = layout.lock_path("a")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with subprocess.Popen([sys.executable, "-c", _HOLD_WITH_A_THREAD, path], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as holder:
        try:
            thread_id = int(holder.stdout.readline())
            assert thread_id != holder.pid
            problems = claim_problems(layout, "a", {"claims": {"a": our_claim(pid=thread_id)}})
            assert [p.kind for p in problems] == ["claim-lost"], problems
            assert f"held by pid {holder.pid}, but its claim names pid {thread_id}" in problems[0].message
        finally:
            holder.stdin.close()
            holder.wait(timeout=10)
