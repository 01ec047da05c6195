"""SIGKILL a migration after every journal record and at random instants, then run the same
command (it must finish, nothing lost or duplicated) or `--rollback` (the old tree, exactly).

The migration runs in a forked child that kills itself right after a chosen record is fsynced
(journal.after_record), or is killed by the parent after a random delay. Runs on /dev/shm when
there is one: the same code, minus the disk's fsync latency.
"""

import os
import random
import signal
import tempfile
import time

import pytest

from comfy_init.layout import Layout
from comfy_init.store import migration_journal as journal_module
from comfy_init.ops.migrate.migration import migrate, rollback
from tests.ops.test_migrate import assert_carried
from tests.support.oldtrees import build, old_manifests, resolved_manifests

RANDOM_RUNS = int(os.environ.get("COMFY_INIT_MIGRATE_KILL_RUNS", "130"))


@pytest.fixture
def scratch():
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base, prefix="migrate-kills-") as path:
        yield path


def _tree(scratch, name):
    data = os.path.join(scratch, name)
    root = build(data, "compat")
    return Layout(data), root, resolved_manifests(root), old_manifests(root)


def _in_child(work, kill_at=None):
    """Run `work` in a forked child; with `kill_at`, the child SIGKILLs itself after that record."""
    child = os.fork()
    if child == 0:
        try:
            if kill_at is not None:
                journal_module.after_record = lambda count: os.kill(os.getpid(), signal.SIGKILL) if count == kill_at \
                    else None
            work()
        finally:
            os._exit(0)
    return child


def _killed_child_status(child):
    _, status = os.waitpid(child, 0)
    return status


def _finish_or_roll_back(layout, root, resolved, exact, forward):
    if forward:
        result = migrate(layout, instance_id="main")
        assert result.exit_code == 0, result.problems
        assert_carried(resolved, layout, root)
        leftovers = [name for _, dirs, files in os.walk(layout.data) for name in dirs + files
                     if ".comfy-init-copying-" in name or ".comfy-init-relink-" in name]
        assert not leftovers, leftovers
    else:
        result = rollback(layout) if journal_module.Journal.read(layout.migration_journal) else None
        assert result is None or result.exit_code == 0, result.problems
        assert old_manifests(root) == exact


def _records_of_a_clean_run(scratch):
    layout, _root, _resolved, _exact = _tree(scratch, "clean")
    counted = []
    journal_module.after_record = counted.append
    try:
        started = time.monotonic()
        assert migrate(layout, instance_id="main").exit_code == 0
        took = time.monotonic() - started
    finally:
        journal_module.after_record = None
    return len(counted), took


def test_kill_after_every_journal_record(scratch):
    records, _took = _records_of_a_clean_run(scratch)
    assert records > 10
    for kill_at in range(1, records + 1):
        for forward in (True, False):
            layout, root, resolved, exact = _tree(scratch, f"at-{kill_at}-{forward}")
            status = _killed_child_status(_in_child(lambda: migrate(layout, instance_id="main"), kill_at))
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            _finish_or_roll_back(layout, root, resolved, exact, forward)


def test_kill_at_random_instants(scratch):
    _records, took = _records_of_a_clean_run(scratch)
    rng = random.Random(20261201)
    killed = 0
    for run in range(RANDOM_RUNS):
        layout, root, resolved, exact = _tree(scratch, f"random-{run}")
        child = _in_child(lambda: migrate(layout, instance_id="main"))
        time.sleep(rng.uniform(0, took * 1.2))
        os.kill(child, signal.SIGKILL)
        killed += os.WIFSIGNALED(_killed_child_status(child))
        _finish_or_roll_back(layout, root, resolved, exact, forward=run % 2 == 0)
    assert killed > RANDOM_RUNS // 2, "most kills must land while the migration runs"


def test_kill_during_rollback_then_rollback_again(scratch):
    layout, root, _resolved, exact = _tree(scratch, "rollback")
    assert migrate(layout, instance_id="main").exit_code == 0
    first = len(journal_module.Journal.read(layout.migration_journal).records)
    for kill_at in range(first + 2, first + 30, 3):
        status = _killed_child_status(_in_child(lambda: rollback(layout), kill_at))
        if not os.WIFSIGNALED(status):
            break  # the rollback ended before that record
    _finish_or_roll_back(layout, root, None, exact, forward=False)
