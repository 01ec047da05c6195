"""The migration's proof: the manifest of the old tree, taken before anything moved, against what
stands at the new places after (and, for a rollback, at the old places again).

Findings come in two grades. `lost`: an entry that is not where it must be, is another file (its
inode changed under a rename) or a link that points elsewhere: the migration failed. `changed`: a
file a writer touched since the plan (size, time, mode, content), or one that appeared: reported,
since nothing was lost.
"""

import os
import stat

from comfy_init.ops.migrate.manifest import (DIRECTORY, FILE, INODE, LINK, MODE, MTIME, OTHER, SIZE, TARGET, TYPE, Walk,
                                             differences, kind_of, lexical_target, type_name)
from comfy_init.ops.migrate.plan import aimer, relocator

SHOWN = 50
MOVING = ("move", "copy", "park")


def _link_moved_right(old_path, old, new_path, new_text, aim):
    """An absolute link keeps its text; a relative one must lead where the old one led, moved."""
    if os.path.isabs(old[TARGET]):
        return new_text == old[TARGET]
    return lexical_target(new_path, new_text) == aim(lexical_target(old_path, old[TARGET]))


def _report(entries, matched, lost, changed):
    return {"entries": entries, "matched": matched, "differences": lost[:SHOWN], "difference_count": len(lost),
            "changed": changed[:SHOWN], "changed_count": len(changed)}


def _destination(step):
    if step["step"] == "park" and not os.path.lexists(step["dst"]):
        return step["alt"]
    return step["dst"]


class _Seen:
    """What readdir alone tells of an entry (its inode and type: no stat call), for a rename,
    where the inode IS the identity; `full` adds the lstat (copies: new inodes, sizes to compare)."""

    __slots__ = ("kind", "ino", "info")

    def __init__(self, kind, ino, info=None):
        self.kind, self.ino, self.info = kind, ino, info


def _kind_of_entry(item):
    if item.is_symlink():
        return LINK
    if item.is_dir(follow_symlinks=False):
        return DIRECTORY
    return FILE if item.is_file(follow_symlinks=False) else OTHER


def _seen(root, full):
    """(path, _Seen) of `root` and of everything below it, links never followed, any depth."""
    info = os.lstat(root)
    yield root, _Seen(kind_of(info.st_mode), info.st_ino, info)
    pending = [root]
    while pending:
        try:
            listing = os.scandir(pending.pop())
        except OSError:
            continue  # a directory that vanished or cannot be read: its entries show as missing
        with listing:
            for item in listing:
                kind = _kind_of_entry(item)
                yield item.path, _Seen(kind, item.inode(), item.stat(follow_symlinks=False) if full else None)
                if kind == DIRECTORY:
                    pending.append(item.path)


def _compare(old_path, old, new_path, seen, same_inode, aim):
    """(lost, changed) for one entry: a renamed one by its inode and type, a copied one by its
    lstat (its bytes were compared by BLAKE3 when it was copied)."""
    if seen.kind != old[TYPE]:
        return [f"{new_path}: was a {type_name(old[TYPE])}, is a {type_name(seen.kind)}"], []
    if same_inode and seen.kind not in (DIRECTORY, LINK) and seen.ino != old[INODE]:
        return [f"{new_path}: it is another file (its inode changed)"], []
    if seen.kind == LINK:
        text = os.readlink(new_path)
        if not _link_moved_right(old_path, old, new_path, text, aim):
            return [f"{new_path}: the link points elsewhere now ({text!r})"], []
        return [], []
    info, changed = seen.info, []
    if info is not None and seen.kind == FILE and (info.st_size != old[SIZE] or info.st_mtime_ns != old[MTIME]):
        changed.append(f"{new_path}: size or modification time changed since the plan")
    if info is not None and stat.S_IMODE(info.st_mode) != old[MODE]:
        changed.append(f"{new_path}: mode {old[MODE]:o} became {stat.S_IMODE(info.st_mode):o}")
    return [], changed


def verify_forward(layout, plan, entries, progress=None):
    """Every old entry at its new place, as it was: a renamed tree by readdir alone (same inode,
    same type: the same file), a copied one by lstat, both against the manifest."""
    aim = aimer(plan, relocator(plan["steps"]))
    seen, lost, changed = set(), [], []
    for step in (s for s in plan["steps"] if s["step"] in MOVING):
        destination = _destination(step)
        if not os.path.lexists(destination):
            lost.append(f"{destination}: missing")
            continue
        source, cut, copied = step["src"], len(destination), step["step"] == "copy"
        for new_path, found in _seen(destination, full=copied):
            old_path = source + new_path[cut:]
            old = entries.get(old_path)
            if old is None:
                changed.append(f"{new_path}: appeared since the plan (kept)")
                continue
            seen.add(old_path)
            gone, touched = _compare(old_path, old, new_path, found, not copied, aim)
            lost += gone
            changed += touched
        if progress is not None:
            progress(len(seen))
    seen |= {merge["from"] for merge in plan["merged"] if os.path.isdir(merge["into"])}
    lost += [f"{path}: not at its new place" for path in sorted(set(entries) - seen)]
    return _report(len(entries), len(seen), lost, changed)


def verify_rollback(plan, entries, progress=None):
    """Every old entry back at its old path; what changed or appeared since is reported."""
    copied = any(step["step"] == "copy" for step in plan["steps"])
    walk = Walk(progress, hash_small=copied)
    for name in plan["source"]["folders"]:
        root = os.path.join(plan["source"]["root"], name)
        if os.path.lexists(root):
            walk.tree(root)
    lost, changed = [], []
    for path, old in entries.items():
        new = walk.entries.get(path)
        if new is None:
            lost.append(f"{path}: not back")
            continue
        gone, touched = differences(old, new, same_inode=False)
        lost += [f"{path}: {text}" for text in gone]
        changed += [f"{path}: {text}" for text in touched]
        if old[TYPE] == LINK and new[TARGET] != old[TARGET]:
            changed.append(f"{path}: the link holds {new[TARGET]!r}, was {old[TARGET]!r}")
    changed += [f"{path}: appeared since the migration (kept)" for path in sorted(set(walk.entries) - set(entries))]
    return _report(len(entries), len(entries) - len(lost), lost, changed)
