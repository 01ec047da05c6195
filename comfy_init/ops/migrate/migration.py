"""`comfy-init migrate`: from a single-instance layout to shared/ + instances/<id>/, journaled.

Under the migration lock and the locks of the target instance and of compatibility mode (so no
ComfyUI can start on either tree meanwhile): find the layout, walk it once into a manifest (the
proof of what was there), plan, record the plan in the journal, run each step between `begin`
and `end` records, and verify the moved tree against the manifest. The same command after a kill
resumes; `--rollback` walks the journal back, and always ends: a step it cannot undo is reported,
never a reason to stop half-way.
"""

import json
import os

from comfy_init.errors import ComfyInitError, error_for
from comfy_init.layout import COMPAT_INSTANCE_ID
from comfy_init.ops.migrate import sources, steps as step_functions
from comfy_init.ops.migrate.planning import make_plan
from comfy_init.ops.migrate.prepare import do_prepare, undo_prepare
from comfy_init.ops.migrate.report import plan_lines
from comfy_init.ops.migrate.verify import verify_forward, verify_rollback
from comfy_init.problems import Problem
from comfy_init.results import Result
from comfy_init.store import claims, conflicts, locks
from comfy_init.store.clock import utc_stamp
from comfy_init.store.files import io_failure, read_regular, write_atomic
from comfy_init.store.migration_journal import FINISHED, ROLLED_BACK, ROLLING_BACK, Journal, unfinished_journal
from comfy_init.store.registry import Registry

COMMAND, ROLLBACK = "migrate", "migrate --rollback"
DEFAULT_INSTANCE = "main"
FORWARD = {"prepare": do_prepare, "move": step_functions.do_move, "copy": step_functions.do_copy,
           "park": step_functions.do_park, "rmdir": step_functions.do_rmdir,
           "compat-link": step_functions.do_compat_link, "relink": step_functions.do_relink,
           "owner": step_functions.do_owner}
BACKWARD = {"prepare": undo_prepare, "move": step_functions.undo_move, "copy": step_functions.undo_copy,
            "park": step_functions.undo_park, "rmdir": step_functions.undo_rmdir,
            "compat-link": step_functions.undo_compat_link, "relink": step_functions.undo_relink,
            "owner": step_functions.undo_owner}
RECOVERING = "see docs/migration.md, Recovering"


def migrate(layout, *, from_path=None, instance_id=None, port=None, variant="core", dry_run=False,
            progress=None):
    """`instance_id`/`from_path` None: not given (a resume then takes the journal's)."""
    try:
        problems = conflicts.id_problems(instance_id) if instance_id is not None else []
        if problems:
            raise error_for(*problems)
        journal = Journal.read(layout.migration_journal)
        if journal is not None and journal.state not in (FINISHED, ROLLED_BACK):
            _same_request(journal, instance_id, from_path)
            return _resume(layout, journal, dry_run, progress)
        source = _source(layout, from_path, journal)
        if source is None:
            return _nothing(layout, journal)
        instance_id = instance_id or DEFAULT_INSTANCE
        if dry_run:
            plan, _ = make_plan(layout, source, instance_id, port=port, variant=variant, progress=progress,
                                hash_small=False)
            return Result(COMMAND, {"dry_run": True, "plan": plan.to_data()}, plan_lines(plan, dry_run=True),
                          plan.problems)
        with _migration_locks(layout, instance_id):
            plan, entries = make_plan(layout, source, instance_id, port=port, variant=variant, progress=progress)
            if plan.problems:
                raise error_for(*plan.problems)
            journal = _start(layout, plan, entries)
            return _run(layout, journal, progress, plan_lines(plan, dry_run=False), entries)
    except ComfyInitError as error:
        return Result.failure(COMMAND, error)
    except OSError as error:
        return Result.failure(COMMAND, _io(error))


def _io(error):
    """An OSError below a step: one line naming the path; the journal lets the same command resume."""
    return io_failure(error.filename or "?", "cannot migrate", error)


def _same_request(journal, instance_id, from_path):
    """A rerun finishes the recorded migration: options that ask for another one are refused."""
    plan = journal.plan
    if instance_id is not None and instance_id != plan["instance"]:
        raise error_for(Problem("usage", f"--to-instance {instance_id!r}: an interrupted migration to instance "
                                f"{plan['instance']!r} is recorded", path=journal.path,
                                fix=f"finish it first (leave out --to-instance, or pass {plan['instance']!r}), "
                                    "or undo it with --rollback"))
    if from_path is not None and os.path.realpath(from_path) != plan["source"]["root"]:
        raise error_for(Problem("usage", f"--from {from_path!r}: an interrupted migration of "
                                f"{plan['source']['root']} is recorded", path=journal.path,
                                fix="finish it first (leave out --from), or undo it with --rollback"))


def _source(layout, from_path, journal):
    """The layout to migrate; None also when `--from` names the tree a finished journal moved."""
    try:
        return sources.find_source(layout, from_path)
    except ComfyInitError:
        finished = journal is not None and journal.state == FINISHED
        if finished and os.path.realpath(from_path or "") == journal.plan["source"]["root"]:
            return None
        raise


def _nothing(layout, journal):
    if journal is not None and journal.state == FINISHED:
        plan = journal.plan
        return Result(COMMAND, {"state": FINISHED, "journal": layout.migration_journal, "plan": plan},
                      [f"already migrated to instance {plan['instance']!r} (journal: {layout.migration_journal}); "
                       "`comfy-init migrate --rollback` returns to the old layout"])
    return Result(COMMAND, {"state": "nothing-to-migrate"},
                  [f"no single-instance layout in {layout.data} (looked for {layout.compat_base}/{{models,"
                   f"custom_nodes,...}} and {layout.data}/{{models,custom_nodes,...}}): nothing to migrate"])


class _migration_locks:
    """The migration lock, then the locks of the target instance and of compatibility mode: a start
    of either waits, then is refused, until the migration ends."""

    def __init__(self, layout, instance_id):
        self.layout, self.instance_id, self.held = layout, instance_id, []

    def __enter__(self):
        os.makedirs(self.layout.locks, exist_ok=True)
        lock = locks.try_lock(self.layout.migration_lock)
        if lock is None:
            raise error_for(Problem("lock-timeout", "another comfy-init migrate runs on this tree",
                                    path=self.layout.migration_lock, fix="wait for it to finish"))
        self.held.append(lock)
        registry = Registry(self.layout)
        try:
            for instance_id in (self.instance_id, COMPAT_INSTANCE_ID):
                self.held.append(claims.lock_stopped(
                    registry, instance_id, "stop it (docker compose down, or stop its container), then migrate"))
        except ComfyInitError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_):
        for lock in reversed(self.held):
            lock.release()


def _start(layout, plan, entries):
    _archive_finished(layout)
    data = json.dumps(entries, separators=(",", ":")).encode()
    write_atomic(layout.migration_manifest, data)
    return Journal.start(layout.migration_journal, plan.to_data())


def _archive_finished(layout):
    """A finished or rolled-back journal (and its manifest) is kept under a dated name."""
    journal = Journal.read(layout.migration_journal)
    if journal is None:
        return
    stamp = utc_stamp()
    for path in (layout.migration_journal, layout.migration_manifest):
        if os.path.lexists(path):
            base, extension = os.path.splitext(path)
            os.rename(path, f"{base}.{stamp}.{journal.state}{extension}")


def _running_now(layout):
    return locks.held_elsewhere(layout.migration_lock)


def _resume(layout, journal, dry_run, progress):
    if journal.state == ROLLING_BACK:
        raise error_for(Problem("usage", "a rollback of the last migration was interrupted",
                                path=layout.migration_journal, fix="finish it: comfy-init migrate --rollback --yes"))
    plan = journal.plan
    if dry_run:
        now = "runs now" if _running_now(layout) else "was interrupted"
        return Result(COMMAND, {"dry_run": True, "resume": True, "running": now == "runs now", "plan": plan},
                      [f"a migration to instance {plan['instance']!r} {now} ({layout.migration_journal}): "
                       "`comfy-init migrate --yes` finishes it, `comfy-init migrate --rollback --yes` undoes it"])
    with _migration_locks(layout, plan["instance"]):
        return _run(layout, journal, progress, [f"resuming the migration recorded in {layout.migration_journal}"])


def _ended(journal, kind):
    return {record["step_index"] for record in journal.records if record["record"] == kind}


def _run(layout, journal, progress, lines, entries=None):
    """Every step not yet ended, then the verification (against `entries`, the manifest this run
    wrote, or the one on disk when resuming)."""
    plan = journal.plan
    done = _ended(journal, "end")
    for index, step in enumerate(plan["steps"]):
        if index in done:
            continue
        journal.append("begin", step_index=index, step=step["step"])
        FORWARD[step["step"]](step, layout)
        journal.append("end", step_index=index)
        if progress is not None:
            progress(index + 1, len(plan["steps"]))
    report = verify_forward(layout, plan, entries if entries is not None else _manifest(layout))
    journal.append("verified", **report)
    if report["differences"]:
        raise error_for(Problem("failed", f"the moved tree misses or mismatches {report['difference_count']} entries "
                                f"of the old one (first: {report['differences'][0]})", path=layout.migration_journal,
                                fix="`comfy-init migrate --rollback --yes` returns to the old layout; " + RECOVERING))
    journal.append(FINISHED)
    instance_id = plan["instance"]
    lines = lines + [f"verified: {report['matched']} entries are at their new places, as they were"]
    lines += [f"  changed since the plan (kept): {text}" for text in report["changed"]]
    lines.append(f"start it: COMFY_MULTI_INSTANCE=true COMFY_INSTANCE_ID={instance_id} (or docker compose "
                 f"up {instance_id} with the file `comfy-init compose` writes)")
    return Result(COMMAND, {"state": FINISHED, "instance": instance_id, "journal": layout.migration_journal,
                            "verified": report, "plan": plan}, lines)


def _manifest(layout):
    data = read_regular(layout.migration_manifest)
    if data is None:
        raise error_for(Problem("missing-path", "is missing: the old tree's manifest, which proves the migration",
                                path=layout.migration_manifest, fix=RECOVERING))
    return json.loads(data)


# -- rollback -------------------------------------------------------------------------------------

def rollback(layout, progress=None, dry_run=False):
    try:
        journal = Journal.read(layout.migration_journal)
        if journal is None or journal.state == ROLLED_BACK:
            raise error_for(Problem("missing-path", "holds no migration to roll back", path=layout.migration_journal,
                                    fix="nothing to do: the tree was never migrated by comfy-init"))
        if dry_run:
            return _rollback_preview(layout, journal)
        with _migration_locks(layout, journal.plan["instance"]):
            return _roll_back(layout, journal, progress)
    except ComfyInitError as error:
        return Result.failure(ROLLBACK, error)
    except OSError as error:
        return Result.failure(ROLLBACK, _io(error))


def _rollback_preview(layout, journal):
    begun = _ended(journal, "begin") - _ended(journal, "undo-end")
    plan = journal.plan
    return Result(ROLLBACK, {"dry_run": True, "state": journal.state, "steps_to_undo": len(begun), "plan": plan},
                  [f"a rollback would undo {len(begun)} steps of the migration of {plan['source']['root']} to "
                   f"instance {plan['instance']!r} ({journal.state}); nothing was changed"])


def _roll_back(layout, journal, progress):
    plan = journal.plan
    if journal.state != ROLLING_BACK:
        journal.append("rollback")
    begun, undone = _ended(journal, "begin"), _ended(journal, "undo-end") | _ended(journal, "undo-failed")
    failed = []
    for index in reversed(range(len(plan["steps"]))):
        step = plan["steps"][index]
        if index not in begun or index in undone:
            continue
        journal.append("undo-begin", step_index=index, step=step["step"])
        try:
            BACKWARD[step["step"]](step, layout)
        except (ComfyInitError, OSError) as error:
            problem = error.problems[0] if isinstance(error, ComfyInitError) else _io(error).problems[0]
            journal.append("undo-failed", step_index=index, problem=problem.as_dict())
            failed.append(problem)
            continue
        journal.append("undo-end", step_index=index)
        if progress is not None:
            progress(len(plan["steps"]) - index, len(plan["steps"]))
    return _rolled_back(layout, journal, failed)


def _rolled_back(layout, journal, failed):
    try:
        report = verify_rollback(journal.plan, _manifest(layout))
    except ComfyInitError:
        report = None  # the manifest is lost: the steps are undone, unproven
    journal.append("verified", **(report or {"unverified": True}))
    journal.append(ROLLED_BACK)
    _archive_finished(layout)
    data = {"state": ROLLED_BACK, "verified": report, "failed": [problem.as_dict() for problem in failed]}
    problems = list(failed)
    if report is not None and report["differences"]:
        problems.append(Problem("failed", f"rolled back, but {report['difference_count']} entries of the old tree "
                                f"are not back (first: {report['differences'][0]})", path=layout.data,
                                fix="look at them (--json lists the first 50); " + RECOVERING))
    lines = ["rolled back: every step of the migration is undone" + ("" if report else
             " (unverified: meta/migration-manifest.json is missing)")]
    if report is not None:
        lines += [f"  changed since the migration (kept): {text}" for text in report["changed"]]
    return Result(ROLLBACK, data, lines, problems)


# -- for `check` ----------------------------------------------------------------------------------

def unfinished(layout):
    """For `check`: a `migration-unfinished` Problem when the journal records a migration (or a
    rollback) that stopped before its end."""
    journal = unfinished_journal(layout)
    if journal is None:
        return []
    fix = ("comfy-init migrate --rollback --yes" if journal.state == ROLLING_BACK
           else "comfy-init migrate --yes (it resumes), or comfy-init migrate --rollback --yes")
    return [Problem("migration-unfinished", f"records a migration that stopped ({journal.state})",
                    path=layout.migration_journal, fix=f"run `{fix}` with the same --data (check --fix resumes it)")]


def finish_unfinished(layout, problem):
    """`check --fix`: finish what the journal records: the rollback it began, else the migration."""
    journal = unfinished_journal(layout)
    if journal is None:
        return None
    rolling_back = journal.state == ROLLING_BACK
    result = rollback(layout) if rolling_back else migrate(layout)
    if result.exit_code:
        raise error_for(*result.problems)
    return f"{'rolled back' if rolling_back else 'finished'} the migration recorded in {layout.migration_journal}"
