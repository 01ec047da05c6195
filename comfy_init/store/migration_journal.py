"""The migration journal: meta/migration-journal.jsonl, one JSON record a line, each fsynced.

The first record is the whole plan (the file is created with it, atomically); then `begin`/`end`
around every step (`undo-begin`/`undo-end`/`undo-failed` for a rollback), `verified`, and
`finished`, `rollback` or `rolled-back`. The state is the last of those three. Each step can also
tell from the tree whether it is done, so the journal says where a run stopped and the tree says
how far the step itself got: a kill at any instant, then the same command, resumes. A torn last
line (a kill while writing it) is dropped on reading and cut off before the next append.

Here, not in ops/, because `comfy-init run` asks it too: a start on a half-migrated tree is refused.
"""

import json
import os

from comfy_init.errors import ComfyInitError, error_for
from comfy_init.problems import Problem
from comfy_init.store.clock import utc_now
from comfy_init.store.files import open_regular, read_regular, write_atomic

FINISHED, ROLLING_BACK, ROLLED_BACK = "finished", "rolling-back", "rolled-back"
MIGRATING = "migrating"
_DECISIVE = {"finished": FINISHED, "rollback": ROLLING_BACK, "rolled-back": ROLLED_BACK}
# Test-only fault injection: called with the number of records written so far, after each fsync
# (tests set it in a forked child to SIGKILL it right after a chosen record).
after_record = None
_TAIL = 4096


def _damaged(path, why):
    return error_for(Problem(
        "invalid-data", f"is not a migration journal comfy-init can read ({why})", path=path,
        fix=f"move it aside (mv {path} {path}.damaged) and look at the tree before migrating again: "
            "see docs/migration.md, Recovering"))


class Journal:
    def __init__(self, path):
        self.path = path
        self.records = []
        self._good_bytes = 0

    @classmethod
    def read(cls, path):
        """The journal at `path`, or None when there is none; DataError when it is damaged."""
        data = read_regular(path)  # never a link, FIFO or device: those are refused, not opened
        if data is None:
            return None
        journal = cls(path)
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn by a kill while it was written: never acted upon
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # RecursionError: nested past Python's limit
                # A whole line (it ends in a newline) that does not parse was never one we wrote.
                raise _damaged(path, f"line {len(journal.records) + 1} is not JSON") from None
            if not isinstance(record, dict) or not isinstance(record.get("record"), str):
                raise _damaged(path, f"record {len(journal.records) + 1} is not a journal record")
            journal.records.append(record)
            journal._good_bytes += len(line)
        if not journal.records or journal.records[0]["record"] != "plan" or \
                not isinstance(journal.records[0].get("plan"), dict):
            raise _damaged(path, "it does not start with the plan")
        return journal

    @classmethod
    def start(cls, path, plan_data):
        """A new journal holding the plan, written whole (temp file, fsync, rename): a journal never
        exists without its plan."""
        journal = cls(path)
        record, line = _line("plan", plan=plan_data)
        write_atomic(path, line)
        journal._good_bytes = len(line)
        journal.records.append(record)
        if after_record is not None:
            after_record(len(journal.records))
        return journal

    def append(self, kind, **fields):
        record, line = _line(kind, **fields)
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, self._good_bytes)  # drop a torn tail before writing after it
            os.lseek(fd, self._good_bytes, os.SEEK_SET)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._good_bytes += len(line)
        self.records.append(record)
        if after_record is not None:
            after_record(len(self.records))

    @property
    def plan(self):
        return self.records[0]["plan"]

    @property
    def state(self):
        """migrating (also: planned, nothing done yet), finished, rolling-back or rolled-back: the
        last decisive record wins (a rollback of a finished migration is rolling-back)."""
        state = MIGRATING
        for record in self.records:
            state = _DECISIVE.get(record["record"], state)
        return state


def _line(kind, **fields):
    record = {"record": kind, "at": utc_now(), **fields}
    return record, (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode()


def unfinished_journal(layout, instance_id=None):
    """The journal when it records an unfinished migration (or rollback) to `instance_id` (to any
    instance when None), else None."""
    journal = Journal.read(layout.migration_journal)
    if journal is None or journal.state in (FINISHED, ROLLED_BACK):
        return None
    if instance_id is not None and journal.plan.get("instance") != instance_id:
        return None
    return journal


def blocking_start(layout, instance_id, multi):
    """For `comfy-init run`: a Problem when an unfinished migration (or rollback) involves this
    start: in multi-instance mode its target instance, in compatibility mode any (the old tree is
    half moved). One lstat when there is no journal; the last line when it ended."""
    path = layout.migration_journal
    try:
        fd = open_regular(path, os.O_RDONLY)
    except (OSError, ComfyInitError):
        return None  # none, or meta/ itself is in the way: the tree's planner says what stands there
    try:
        size = os.fstat(fd).st_size
        tail = os.pread(fd, _TAIL, max(0, size - _TAIL)).splitlines()
    finally:
        os.close(fd)
    try:
        last = json.loads(tail[-1]) if tail else {}
    except ValueError:
        last = {}
    if last.get("record") in ("finished", "rolled-back"):
        return None
    journal = unfinished_journal(layout, instance_id if multi else None)
    if journal is None:
        return None
    what = "rollback" if journal.state == ROLLING_BACK else "migration"
    return Problem("migration-in-progress", f"records an unfinished {what} to instance "
                   f"{journal.plan.get('instance')!r}: this start would run on a half-moved tree", path=path,
                   fix="finish it first: comfy-init migrate --yes (it resumes) or comfy-init migrate --rollback "
                       "--yes, with the same --data")


def refuse_while_migrating(layout, instance_id=None, what="this"):
    """For delete, purge and restore: BusyError (75) while an unfinished migration (or rollback)
    fills `instance_id` (any instance when None): its journal still needs what they would remove."""
    journal = unfinished_journal(layout, instance_id)
    if journal is None:
        return
    raise error_for(Problem("migration-in-progress", f"records an unfinished migration to instance "
                            f"{journal.plan.get('instance')!r}: {what} must wait until it ends", path=journal.path,
                            fix="finish it: comfy-init migrate --yes (it resumes), or undo it: comfy-init migrate "
                                "--rollback --yes"))
