"""The migration plan: every step, in order, as data the journal records before anything moves.

A folder whose destination is absent or an empty directory moves in ONE rename (a rename replaces
an empty directory, and fails on a full one, so nothing is ever overwritten). Where both sides
hold entries, only those directories are walked: an entry the destination lacks moves whole; the
same file (size, then BLAKE3) is kept once, the incoming copy parked in meta/trash (checked again
right before: if the kept copy changed meanwhile, both are kept); a different file keeps both, the
incoming one under a `.migrated` name (a SQLite database with its -wal/-shm/-journal). On another
filesystem or mount, `copy` steps stand in for renames, after a free-space check.
"""

import bisect
import os
import stat

from comfy_init.layout import MODEL_FOLDERS
from comfy_init.ops.migrate import manifest
from comfy_init.ops.migrate.filesystems import Filesystems
from comfy_init.ops.migrate.manifest import FILE, INODE, LINK, MODE, MTIME, NLINK, SIZE, TARGET, TYPE, lexical_target
from comfy_init.problems import Problem
from comfy_init.store import locks

VERSION = 1
# SQLite keeps a database's last transactions beside it: they move, or are renamed, with it.
SQLITE_SIDES = ("-wal", "-shm", "-journal")


class Plan:
    def __init__(self, source, instance_id, trash, token):
        self.source, self.instance_id, self.trash, self.token = source, instance_id, trash, token
        self.steps, self.problems, self.notes = [], [], []
        self.duplicates, self.renamed, self.merged, self.unreadable = [], [], [], []
        self.folders, self.copy_bytes = {}, 0

    def add(self, kind, **fields):
        self.steps.append({"step": kind, **fields})

    def to_data(self):
        return {"version": VERSION, "token": self.token, "source": self.source.describe(),
                "instance": self.instance_id, "steps": self.steps, "folders": self.folders,
                "duplicates": self.duplicates, "renamed": self.renamed, "merged": self.merged,
                "notes": self.notes, "unreadable": self.unreadable, "copy_bytes": self.copy_bytes,
                "trash": self.trash}


def _exists_dir(path):
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _empty_after_prepare(target):
    """Whether `target` is absent or an empty directory: a rename can then replace it (the
    instance's tree makes the missing ones empty first)."""
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
        self.filesystems = Filesystems()
        self._sorted = None

    def folder(self, name, source_path, target):
        if self.filesystems.is_mount_point(source_path):
            self.plan.problems.append(Problem(
                "invalid-data", "is a mount point: neither a rename nor a copy can move a mounted disk", path=source_path,
                fix=f"mount that disk at {target} instead (then its folder is already in place), or copy its "
                    "contents into a plain folder here; then migrate again"))
            return
        if os.path.islink(target):
            self.plan.problems.append(Problem(
                "not-a-directory", f"is a link (to {os.readlink(target)!r}): migrate merges {name}/ into real "
                "directories only", path=target,
                fix=f"mount the disk the link points to at {target} instead of linking (or move its contents "
                    "there), then migrate again"))
            return
        cross = self.filesystems.differ(source_path, target)
        if target != self.layout.shared_models and _empty_after_prepare(target):
            how = "copy" if cross else "rename"
            self._move(source_path, target, cross, replaces_empty=True)
        elif not os.path.lexists(target) or _exists_dir(target):
            how = "merge (copy)" if cross else "merge"
            self._merge(source_path, target, cross)
            self.plan.add("rmdir", path=source_path, mode=self.entries[source_path][MODE])
        else:
            self.plan.problems.append(Problem(
                "not-a-directory", f"stands where {name}/ must go, and is not a directory", path=target,
                fix="move it away, then migrate again"))
            return
        count, size = self.totals[source_path]
        self.plan.folders[name] = {"from": source_path, "to": target, "how": how, "entries": count, "bytes": size}
        # Between resolved paths: a link on the way (a linked data root) must not bend the text.
        text = os.path.relpath(os.path.realpath(target), os.path.realpath(os.path.dirname(source_path)))
        self.plan.add("compat-link", path=source_path, target=text)

    def _move(self, source_path, target, cross, parents=False, replaces_empty=False):
        """`replaces_empty`: an empty directory stands (or the instance's tree puts one) at `target`,
        which a rollback puts back."""
        info = os.lstat(source_path)
        kind = "copy" if cross else "move"
        self.plan.add(kind, src=source_path, dst=target, ino=info.st_ino, dir=stat.S_ISDIR(info.st_mode),
                      parents=parents, replaces_empty=replaces_empty, token=self.plan.token)
        if cross:
            self.plan.copy_bytes += self._bytes_below(source_path)

    def _below(self, root):
        """The manifest's paths at or below `root`: those below sort between "root/" and "root0"."""
        if self._sorted is None:
            self._sorted = sorted(self.entries)
        first, last = bisect.bisect_left(self._sorted, root), bisect.bisect_left(self._sorted, root + "0")
        return [path for path in self._sorted[first:last] if path == root or path.startswith(root + "/")]

    def _bytes_below(self, root):
        return sum(self.entries[path][SIZE] for path in self._below(root) if self.entries[path][TYPE] == FILE)

    def _merge(self, source_path, target, cross):
        self.plan.merged.append({"from": source_path, "into": target})
        existing = _children_after_prepare(self.layout, target)
        names = sorted(os.listdir(source_path))
        renamed_bases = {}
        for name in names:
            incoming, there = os.path.join(source_path, name), os.path.join(target, name)
            base = _sqlite_base(name, names)
            if base in renamed_bases:  # a database's side file goes where its database goes
                self._move(incoming, renamed_bases[base] + name[len(base):], cross)
                continue
            if name not in existing:
                self._move(incoming, there, cross)
            elif _empty_after_prepare(there) and _exists_dir(incoming):
                self._move(incoming, there, cross, replaces_empty=True)
            elif _exists_dir(incoming) and _exists_dir(there):
                self._merge(incoming, there, cross)
                self.plan.add("rmdir", path=incoming, mode=self.entries[incoming][MODE])
            elif not _has_sides(incoming) and self._same(incoming, there):
                self._park(incoming, there, cross)
            else:
                renamed_bases[name] = self._rename(incoming, there, cross)

    def _rename(self, incoming, there, cross):
        renamed = _free_name(there)
        self.plan.renamed.append({"path": incoming, "to": renamed, "because": f"{there} differs"})
        self._move(incoming, renamed, cross)
        return renamed

    def _park(self, incoming, there, cross):
        """The same file twice: the incoming one goes to meta/trash, if it still equals the kept one
        when the step runs (else to the `.migrated` name, both kept)."""
        parked = os.path.join(self.plan.trash, os.path.relpath(incoming, self.plan.source.root))
        entry = self.entries[incoming]
        self.plan.duplicates.append({"path": incoming, "kept": there, "bytes": entry[SIZE], "parked": parked})
        if cross or self.filesystems.differ(incoming, self.plan.trash):
            self._move(incoming, parked, True, parents=True)
            return
        kept = os.lstat(there)
        self.plan.add("park", src=incoming, dst=parked, alt=_free_name(there), kept=there, ino=entry[INODE],
                      kept_stat=[kept.st_ino, kept.st_size, kept.st_mtime_ns], mode=entry[MODE],
                      mtime=entry[MTIME], link=entry[TARGET], dir=False, parents=True, replaces_empty=False)

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
        if mine[SIZE] != theirs[SIZE]:
            return False
        return manifest.file_digest(incoming) == manifest.file_digest(there)

    def relinks(self, relocate, aim):
        """Relative links whose text would point elsewhere from their new place are rewritten."""
        parked = {item["path"] for item in self.plan.duplicates}
        for path, entry in self.entries.items():
            if entry[TYPE] != LINK or os.path.isabs(entry[TARGET]) or path in parked:
                continue
            new_path = relocate(path)
            if new_path is None or new_path == path:
                continue
            text = os.path.relpath(aim(lexical_target(path, entry[TARGET])), os.path.dirname(new_path))
            if text != entry[TARGET]:
                self.plan.add("relink", path=new_path, old=entry[TARGET], new=text, token=self.plan.token)

    def hard_links(self, relocate):
        """Across filesystems, files that were one (hard links) in different copy steps stay one:
        each later name is linked to the first one copied (steps run in order, each walks sorted)."""
        anchors = {}
        for index, step in enumerate(self.plan.steps):
            if step["step"] != "copy":
                continue
            links = {}
            for path in sorted(self._below(step["src"]), key=lambda p: p.split("/")):
                entry = self.entries[path]
                if entry[TYPE] != FILE or entry[NLINK] < 2:
                    continue
                first = anchors.setdefault(entry[INODE], (index, path))
                if first[0] != index:
                    links[path] = relocate(first[1])
            if links:
                step["links"] = links


def _sqlite_base(name, names):
    for side in SQLITE_SIDES:
        if name.endswith(side) and name[:-len(side)] in names:
            return name[:-len(side)]
    return None


def _has_sides(path):
    return any(os.path.lexists(path + side) for side in SQLITE_SIDES)


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
    moved = {step["src"]: step["dst"] for step in steps if step["step"] in ("move", "copy", "park")}

    def relocate(path):
        probe = path
        while probe and probe != "/":
            if probe in moved:
                return moved[probe] + path[len(probe):]
            probe = os.path.dirname(probe)
        return None
    return relocate


def aimer(plan_data, relocate):
    """Where a link that pointed at `path` must point now: a parked duplicate's kept copy (never
    into meta/trash), else the path's new place, else the path itself."""
    kept = {item["path"]: item["kept"] for item in plan_data["duplicates"]}

    def aim(path):
        return kept.get(path) or relocate(path) or path
    return aim


def database_problems(source):
    """A ComfyUI that still has the old tree's database open holds its `<db>.lock` (ComfyUI 0.38)."""
    user = source.folders.get("user")
    candidates = [os.path.join(user, "comfyui.db.lock")] if user else []
    candidates.append(os.path.join(source.root, "user", "comfyui.db.lock"))
    return [Problem("instance-held", "is locked: a ComfyUI still runs on the old tree's database", path=lock,
                    fix="stop that ComfyUI (docker compose down, or stop the container), then migrate")
            for lock in sorted(set(candidates)) if locks.held_elsewhere(lock)]
