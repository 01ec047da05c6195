"""`comfy-init migrate`: from a single-instance layout to shared/ + instances/<id>/, journaled.

Under the migration lock and the locks of the target instance and of compatibility mode (so no
ComfyUI can start on either tree meanwhile): find the layout, walk it once into a manifest (the
proof of what was there), plan, record the plan in the journal, run each step between `begin`
and `end` records, and verify the moved tree against the manifest. The same command after a kill
resumes; `--rollback` walks the journal back.
"""

import json
import os

from comfy_init.errors import ComfyInitError, error_for
from comfy_init.layout import COMPAT_INSTANCE_ID
from comfy_init.ops.migrate import sources, steps as step_functions
from comfy_init.ops.migrate.journal import FINISHED, ROLLED_BACK, Journal
from comfy_init.ops.migrate.manifest import DIGEST, OTHER, TYPE, UNREADABLE, Walk
from comfy_init.ops.migrate.plan import Plan, Planner, database_problems, relocator
from comfy_init.ops.migrate.prepare import do_prepare, undo_prepare
from comfy_init.ops.migrate.report import plan_lines, space_problems
from comfy_init.ops.migrate.verify import verify_forward, verify_rollback
from comfy_init.problems import Problem
from comfy_init.results import Result
from comfy_init.store import claims, conflicts
from comfy_init.store.clock import utc_stamp
from comfy_init.store.files import io_failure, read_regular, write_atomic
from comfy_init.store.locks import try_lock
from comfy_init.store.registry import Registry
from comfy_init.tree.paths import is_inside

COMMAND = "migrate"
FORWARD = {"prepare": do_prepare, "move": step_functions.do_move, "copy": step_functions.do_copy,
           "rmdir": step_functions.do_rmdir, "compat-link": step_functions.do_compat_link,
           "relink": step_functions.do_relink, "owner": step_functions.do_owner}
BACKWARD = {"prepare": undo_prepare, "move": step_functions.undo_move, "copy": step_functions.undo_copy,
            "rmdir": step_functions.undo_rmdir, "compat-link": step_functions.undo_compat_link,
            "relink": step_functions.undo_relink, "owner": step_functions.undo_owner}


def make_plan(layout, source, instance_id, *, port=None, variant="core", progress=None, hash_small=True):
    """The Plan and the old tree's manifest (path -> entry)."""
    walk = Walk(progress, hash_small=hash_small)
    for path in source.folders.values():
        walk.tree(path)
    plan = Plan(source, instance_id, layout.trash_entry(f"migration-{instance_id}-{utc_stamp()}"))
    plan.problems += sources.source_problems(layout, source) + database_problems(source)
    plan.problems += [Problem("invalid-data", "is a mount point inside the old tree: a rename cannot carry it",
                              path=path, fix="unmount it (mount it at its new place after the migration), "
                                             "then migrate again") for path in walk.foreign]
    plan.problems += [Problem("cannot-look", f"cannot be read ({why})", path=path,
                              fix="make it readable for this user, or run migrate as its owner")
                      for path, why in walk.failures]
    instance = layout.instance(instance_id)
    document = Registry(layout).load()
    registered = instance_id in document["instances"]
    if not registered:  # what `instance create` would refuse, refused before the journal starts
        plan.problems += conflicts.id_problems(instance_id, creating=True)
        if port is not None:
            plan.problems += conflicts.port_problems(document, instance_id, port, _port_in_use)
    plan.add("prepare", id=instance_id, register=not registered, port=port, variant=variant)
    planner = Planner(layout, plan, walk)
    for name in sorted(source.folders):
        planner.folder(name, source.folders[name], source.destination(layout, instance, name))
    planner.relinks(relocator(plan.steps))
    if source.kind == sources.COMPAT:
        plan.add("owner", path=layout.compat_instance(source.root).owner_file, id=instance_id)
    plan.notes += _notes(source)
    _unreadable(plan, walk.entries)
    plan.problems += space_problems(plan, layout)
    return plan, walk.entries


def _port_in_use(port):
    from comfy_init.comfyui.endpoint import port_in_use

    return port_in_use("0.0.0.0", port)


def _link_text(path):
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _unreadable(plan, entries):
    """Files this user cannot read: a rename moves them (said in the plan), a copy cannot (refused),
    nor can it carry sockets and devices."""
    copied = [step["src"] for step in plan.steps if step["step"] == "copy"]
    for path, entry in entries.items():
        if entry[TYPE] == OTHER and any(is_inside(path, root) for root in copied):
            plan.problems.append(Problem("invalid-data", "is a FIFO, socket or device file, which cannot be copied "
                                         "to another filesystem", path=path,
                                         fix="remove it (its program recreates it), then migrate again"))
        if entry[DIGEST] != UNREADABLE:
            continue
        if any(is_inside(path, root) for root in copied):
            plan.problems.append(Problem("cannot-look", "cannot be read, and must be copied to another filesystem",
                                         path=path, fix="make it readable for this user, or migrate as its owner"))
        else:
            plan.unreadable.append(path)


def _notes(source):
    notes = [f"{path} stays where it is (ComfyUI empties temp at every start; it is not carried)"
             if os.path.basename(path) in sources.NOT_CARRIED else
             f"{path} is a link to {_link_text(path)!r} and stays as it is: what it points to is not moved "
             "(mount or move that folder to its new place yourself)" for path in source.left]
    for path in source.model_path_files():
        notes.append(f"{path} names model folders of its own: keep them by moving their files into shared/models, "
                     "or pass the file to ComfyUI with CLI_ARGS='--extra-model-paths-config <path>'")
    return notes


def migrate(layout, *, from_path=None, instance_id="main", port=None, variant="core", dry_run=False,
            progress=None):
    try:
        problems = conflicts.id_problems(instance_id)
        if problems:
            raise error_for(*problems)
        journal = Journal.read(layout.migration_journal)
        if journal is not None and journal.state not in (FINISHED, ROLLED_BACK):
            return _resume(layout, journal, dry_run, progress)
        source = _source(layout, from_path, journal)
        if source is None:
            return _nothing(layout, journal)
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
            return _run(layout, journal, progress, plan_lines(plan, dry_run=False))
    except ComfyInitError as error:
        return Result.failure(COMMAND, error)
    except OSError as error:
        return Result.failure(COMMAND, _io(error))


def _io(error):
    """An OSError below a step: one line naming the path; the journal lets the same command resume."""
    return io_failure(error.filename or "?", "cannot migrate", error)


def _source(layout, from_path, journal):
    """The layout to migrate; None also when `--from` names the tree a finished journal moved."""
    try:
        return sources.find_source(layout, from_path)
    except ComfyInitError:
        finished = journal is not None and journal.state == FINISHED
        if finished and os.path.abspath(from_path or "") == journal.plan["source"]["root"]:
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
        lock = try_lock(self.layout.migration_lock)
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


def _resume(layout, journal, dry_run, progress):
    state = journal.state
    if state == "rolling-back":
        raise error_for(Problem("usage", "a rollback of the last migration was interrupted",
                                path=layout.migration_journal, fix="finish it: comfy-init migrate --rollback"))
    plan = journal.plan
    if dry_run:
        return Result(COMMAND, {"dry_run": True, "resume": True, "plan": plan},
                      [f"an interrupted migration to instance {plan['instance']!r} is recorded in "
                       f"{layout.migration_journal}: `comfy-init migrate --yes` finishes it, "
                       "`comfy-init migrate --rollback` undoes it"])
    with _migration_locks(layout, plan["instance"]):
        return _run(layout, journal, progress, [f"resuming the migration recorded in {layout.migration_journal}"])


def _ended(journal, kind):
    return {record["step_index"] for record in journal.records if record["record"] == kind}


def _run(layout, journal, progress, lines):
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
    report = verify_forward(layout, plan, _manifest(layout))
    journal.append("verified", **report)
    if report["differences"]:
        raise error_for(Problem("failed", f"the moved tree differs from the old one in {len(report['differences'])} "
                                f"entries (first: {report['differences'][0]})", path=layout.migration_journal,
                                fix="`comfy-init migrate --rollback` returns to the old layout; "
                                    "see docs/migration.md"))
    journal.append(FINISHED)
    instance_id = plan["instance"]
    lines = lines + [f"verified: {report['entries']} entries are at their new places, as they were",
                     f"start it: COMFY_MULTI_INSTANCE=true COMFY_INSTANCE_ID={instance_id} (or docker compose "
                     f"up {instance_id} with the file `comfy-init compose` writes)"]
    return Result(COMMAND, {"state": FINISHED, "instance": instance_id, "journal": layout.migration_journal,
                            "verified": report, "plan": plan}, lines)


def _manifest(layout):
    data = read_regular(layout.migration_manifest)
    if data is None:
        raise error_for(Problem("missing-path", "is missing: the old tree's manifest, which proves the migration",
                                path=layout.migration_manifest, fix="see docs/migration.md (Recovering)"))
    return json.loads(data)


def rollback(layout, progress=None):
    try:
        journal = Journal.read(layout.migration_journal)
        if journal is None or journal.state == ROLLED_BACK:
            raise error_for(Problem("missing-path", "holds no migration to roll back", path=layout.migration_journal,
                                    fix="nothing to do: the tree was never migrated by comfy-init"))
        plan = journal.plan
        with _migration_locks(layout, plan["instance"]):
            return _roll_back(layout, journal, progress)
    except ComfyInitError as error:
        return Result.failure("migrate --rollback", error)
    except OSError as error:
        return Result.failure("migrate --rollback", _io(error))


def _roll_back(layout, journal, progress):
    plan = journal.plan
    if journal.state != "rolling-back":
        journal.append("rollback")
    begun, undone = _ended(journal, "begin"), _ended(journal, "undo-end")
    for index in reversed(range(len(plan["steps"]))):
        step = plan["steps"][index]
        if index not in begun or index in undone:
            continue
        journal.append("undo-begin", step_index=index, step=step["step"])
        BACKWARD[step["step"]](step, layout)
        journal.append("undo-end", step_index=index)
        if progress is not None:
            progress(len(plan["steps"]) - index, len(plan["steps"]))
    report = verify_rollback(plan, _manifest(layout))
    journal.append("verified", **report)
    # Every step is undone: the rollback is over even when files changed since the migration (they
    # came back with their folders; nothing was deleted), so it is never stuck half-way.
    journal.append(ROLLED_BACK)
    _archive_finished(layout)
    data = {"state": ROLLED_BACK, "verified": report}
    if report["differences"]:
        return Result("migrate --rollback", data, problems=[Problem(
            "failed", f"rolled back, but {report['difference_count']} entries differ from the manifest taken before "
            f"the migration (first: {report['differences'][0]}): changed since then?", path=layout.data,
            fix="look at them (--json lists the first 50); nothing was deleted")])
    return Result("migrate --rollback", data,
                  [f"rolled back: {report['entries']} entries are where they were before the migration"])


def unfinished(layout):
    """For `check`: a `migration-unfinished` Problem when the journal records a migration (or a
    rollback) that stopped before its end."""
    journal = Journal.read(layout.migration_journal)
    if journal is None or journal.state in (FINISHED, ROLLED_BACK):
        return []
    fix = ("comfy-init migrate --rollback --yes" if journal.state == "rolling-back"
           else "comfy-init migrate --yes (it resumes), or comfy-init migrate --rollback --yes")
    return [Problem("migration-unfinished", f"records a migration that stopped ({journal.state})",
                    path=layout.migration_journal, fix=f"run `{fix}` with the same --data (check --fix resumes it)")]


def finish_unfinished(layout, problem):
    """`check --fix`: finish what the journal records: the rollback it began, else the migration."""
    journal = Journal.read(layout.migration_journal)
    if journal is None or journal.state in (FINISHED, ROLLED_BACK):
        return None
    rolling_back = journal.state == "rolling-back"
    result = rollback(layout) if rolling_back else migrate(layout, instance_id=journal.plan["instance"])
    if result.exit_code:
        raise error_for(*result.problems)
    return f"{'rolled back' if rolling_back else 'finished'} the migration recorded in {layout.migration_journal}"
