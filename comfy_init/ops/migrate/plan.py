"""The migration plan: every step, in order, as data the journal records before anything moves.

A folder whose destination is absent or an empty directory moves in ONE rename (a rename replaces
an empty directory, and fails on a full one, so nothing is ever overwritten). Where both sides
hold entries, only those directories are walked: an entry the destination lacks moves whole; the
same file (size, then BLAKE3) is kept once, the incoming copy parked in meta/trash; a different
file keeps both, the incoming one under a `.migrated` name. On another filesystem `copy` steps
stand in for renames, after a free-space check.
"""

import bisect
import os
import stat

from comfy_init.layout import MODEL_FOLDERS
from comfy_init.ops.migrate import manifest
from comfy_init.ops.migrate.manifest import FILE, LINK, TARGET, TYPE, lexical_target
from comfy_init.problems import Problem
from comfy_init.store import locks

VERSION = 1


class Plan:
    def __init__(self, source, instance_id, trash):
        self.source, self.instance_id, self.trash = source, instance_id, trash
        self.steps, self.problems, self.notes = [], [], []
        self.duplicates, self.renamed, self.merged, self.unreadable = [], [], [], []
        self.folders, self.copy_bytes = {}, 0

    def add(self, kind, **fields):
        self.steps.append({"step": kind, **fields})

    def moves(self):
        return [step for step in self.steps if step["step"] in ("move", "copy")]

    def to_data(self):
        return {"version": VERSION, "source": self.source.describe(), "instance": self.instance_id,
                "steps": self.steps, "folders": self.folders, "duplicates": self.duplicates,
                "renamed": self.renamed, "merged": self.merged, "notes": self.notes, "unreadable": self.unreadable,
                "copy_bytes": self.copy_bytes, "trash": self.trash}


def _exists_dir(path):
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _device_of(path):
    """The device of `path`, or of its nearest existing parent (where it will be created)."""
    while True:
        try:
            return os.stat(path).st_dev
        except FileNotFoundError:
            path = os.path.dirname(path)


def _empty_after_prepare(layout, target):
    """Whether `target` is absent, an empty directory, or a model folder the instance's tree
    creates empty: a rename can then replace it."""
    if not os.path.lexists(target):
        return True
    if not _exists_dir(target):
        return False
    with os.scandir(target) as entries:
        return next(entries, None) is None


def _children_after_prepare(layout, target):
    """The names `target` will hold once the instance's tree exists (shared/models: the model folders)."""
    names = set(os.listdir(target)) if _exists_dir(target) else set()
    if target == layout.shared_models:
        names |= set(MODEL_FOLDERS)
    return names


class Planner:
    """Fills a Plan from a Source and the old tree's manifest (path -> entry)."""

    def __init__(self, layout, plan, walk):
        self.layout, self.plan, self.entries, self.totals = layout, plan, walk.entries, walk.totals
        self._sorted = None

    def folder(self, name, source_path, target):
        cross = _device_of(source_path) != _device_of(target)
        if target != self.layout.shared_models and _empty_after_prepare(self.layout, target):
            how = "copy" if cross else "rename"
            self._move(source_path, target, cross, replaces_empty=True)
        elif not os.path.lexists(target) or _exists_dir(target):
            how = "merge (copy)" if cross else "merge"
            self._merge(source_path, target, cross)
            self.plan.add("rmdir", path=source_path, mode=self.entries[source_path][manifest.MODE])
        else:
            self.plan.problems.append(Problem(
                "not-a-directory", f"stands where {name}/ must go, and is not a directory", path=target,
                fix="move it away, then migrate again"))
            return
        count, size = self.totals[source_path]
        self.plan.folders[name] = {"from": source_path, "to": target, "how": how, "entries": count, "bytes": size}
        self.plan.add("compat-link", path=source_path, target=os.path.relpath(target, os.path.dirname(source_path)))

    def _move(self, source_path, target, cross, parents=False, replaces_empty=False):
        """`replaces_empty`: an empty directory stands (or the instance's tree puts one) at `target`,
        which a rollback puts back."""
        info = os.lstat(source_path)
        kind = "copy" if cross else "move"
        self.plan.add(kind, src=source_path, dst=target, ino=info.st_ino, dir=stat.S_ISDIR(info.st_mode),
                      parents=parents, replaces_empty=replaces_empty)
        if cross:
            self.plan.copy_bytes += self._bytes_below(source_path)

    def _bytes_below(self, root):
        """The bytes of the files at or below `root`: paths below it sort between "root/" and "root0"."""
        if self._sorted is None:
            self._sorted = sorted(self.entries)
        first, last = bisect.bisect_left(self._sorted, root), bisect.bisect_left(self._sorted, root + "0")
        return sum(self.entries[path][manifest.SIZE] for path in self._sorted[first:last]
                   if self.entries[path][TYPE] == FILE and (path == root or path.startswith(root + "/")))

    def _merge(self, source_path, target, cross):
        self.plan.merged.append({"from": source_path, "into": target})
        existing = _children_after_prepare(self.layout, target)
        for name in sorted(os.listdir(source_path)):
            incoming, there = os.path.join(source_path, name), os.path.join(target, name)
            if name not in existing:
                self._move(incoming, there, cross)
            elif _empty_after_prepare(self.layout, there) and _exists_dir(incoming):
                self._move(incoming, there, cross, replaces_empty=True)
            elif _exists_dir(incoming) and _exists_dir(there):
                self._merge(incoming, there, cross)
                self.plan.add("rmdir", path=incoming, mode=self.entries[incoming][manifest.MODE])
            elif self._same(incoming, there):
                parked = os.path.join(self.plan.trash, os.path.relpath(incoming, self.plan.source.root))
                self.plan.duplicates.append({"path": incoming, "kept": there,
                                             "bytes": self.entries[incoming][manifest.SIZE], "parked": parked})
                self._move(incoming, parked, _device_of(incoming) != _device_of(self.plan.trash), parents=True)
            else:
                renamed = _free_name(there)
                self.plan.renamed.append({"path": incoming, "to": renamed, "because": f"{there} differs"})
                self._move(incoming, renamed, cross)

    def _same(self, incoming, there):
        mine = self.entries[incoming]
        try:
            theirs = manifest.entry_of(there, os.lstat(there), hash_small=False)
        except OSError:
            return False
        if mine[TYPE] != theirs[TYPE] or mine[TYPE] not in (FILE, LINK):
            return False
        if mine[TYPE] == LINK:
            return mine[TARGET] == theirs[TARGET]
        if mine[manifest.SIZE] != theirs[manifest.SIZE]:
            return False
        return manifest.file_digest(incoming) == manifest.file_digest(there)

    def relinks(self, relocate):
        """Relative links whose text would point elsewhere from their new place are rewritten."""
        parked = {item["path"] for item in self.plan.duplicates}
        for path, entry in self.entries.items():
            if entry[TYPE] != LINK or os.path.isabs(entry[TARGET]) or path in parked:
                continue
            new_path = relocate(path)
            if new_path is None or new_path == path:
                continue
            aim = relocate(lexical_target(path, entry[TARGET])) or lexical_target(path, entry[TARGET])
            text = os.path.relpath(aim, os.path.dirname(new_path))
            if text != entry[TARGET]:
                self.plan.add("relink", path=new_path, old=entry[TARGET], new=text)


def _free_name(path):
    base, extension = os.path.splitext(path)
    number = 0
    while True:
        candidate = f"{base}.migrated{number or ''}{extension}"
        if not os.path.lexists(candidate):
            return candidate
        number += 1


def relocator(steps):
    """A function: old path -> its new path (None when no step moves it)."""
    moved = {step["src"]: step["dst"] for step in steps if step["step"] in ("move", "copy")}

    def relocate(path):
        probe = path
        while probe and probe != "/":
            if probe in moved:
                return moved[probe] + path[len(probe):]
            probe = os.path.dirname(probe)
        return None
    return relocate


def database_problems(source):
    """A ComfyUI that still has the old tree's database open holds its `<db>.lock` (ComfyUI 0.38)."""
    user = source.folders.get("user")
    candidates = [os.path.join(user, "comfyui.db.lock")] if user else []
    candidates.append(os.path.join(source.root, "user", "comfyui.db.lock"))
    return [Problem("instance-held", "is locked: a ComfyUI still runs on the old tree's database", path=lock,
                    fix="stop that ComfyUI (docker compose down, or stop the container), then migrate")
            for lock in sorted(set(candidates)) if locks.held_elsewhere(lock)]
