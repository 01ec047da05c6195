"""The migration journal: meta/migration-journal.jsonl, one JSON record a line, each fsynced.

The first record is the whole plan; then `begin`/`end` around every step (and `undo-begin`/
`undo-end` for a rollback), `verified`, and a last `finished` or `rolled-back`. Each step can also
tell from the tree whether it is done, so the journal says where a run stopped and the tree says
how far the step itself got: a kill at any instant, then the same command, resumes. A torn last
line (a kill while writing it) is dropped on reading and cut off before the next append.
"""

import json
import os

from comfy_init.store.clock import utc_now
from comfy_init.store.files import write_atomic

FINISHED, ROLLED_BACK = "finished", "rolled-back"
# Test-only fault injection: called with the number of records written so far, after each fsync
# (tests set it in a forked child to SIGKILL it right after a chosen record).
after_record = None


class Journal:
    def __init__(self, path):
        self.path = path
        self.records = []
        self._good_bytes = 0

    @classmethod
    def read(cls, path):
        """The journal at `path`, or None when there is none."""
        journal = cls(path)
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except FileNotFoundError:
            return None
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn by a kill while it was written: never acted upon
            try:
                journal.records.append(json.loads(line))
            except ValueError:
                break
            journal._good_bytes += len(line)
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
        return self.records[0]["plan"] if self.records and self.records[0]["record"] == "plan" else None

    @property
    def state(self):
        """planned, migrating, finished, rolling-back or rolled-back."""
        kinds = [record["record"] for record in self.records]
        for final in (ROLLED_BACK, FINISHED):
            if final in kinds:
                return final
        if "rollback" in kinds:
            return "rolling-back"
        return "migrating" if len(kinds) > 1 else "planned"


def _line(kind, **fields):
    record = {"record": kind, "at": utc_now(), **fields}
    return record, (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
