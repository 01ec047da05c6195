"""The migration's proof: the manifest of the old tree, taken before anything moved, against what
stands at the new places after (and, for a rollback, at the old places again).

Findings come in two grades. `lost`: an entry that is not where it must be, is another file (its
inode changed under a rename) or a link that points elsewhere: the migration failed. `changed`: a
file a writer touched since the plan (size, time, mode, content), or one that appeared: reported,
since nothing was lost.
"""

import os

from comfy_init.ops.migrate.manifest import LINK, TARGET, TYPE, Walk, differences, lexical_target
from comfy_init.ops.migrate.plan import aimer, relocator

SHOWN = 50
MOVING = ("move", "copy", "park")


def _link_moved_right(old_path, old, new_path, new, aim):
    if old[TYPE] != LINK or new[TYPE] != LINK:
        return True
    if os.path.isabs(old[TARGET]):
        return new[TARGET] == old[TARGET]
    return lexical_target(new_path, new[TARGET]) == aim(lexical_target(old_path, old[TARGET]))


def _report(entries, matched, lost, changed):
    return {"entries": entries, "matched": matched, "differences": lost[:SHOWN], "difference_count": len(lost),
            "changed": changed[:SHOWN], "changed_count": len(changed)}


def _destination(step):
    if step["step"] == "park" and not os.path.lexists(step["dst"]):
        return step["alt"]
    return step["dst"]


def verify_forward(layout, plan, entries, progress=None):
    """Every old entry at its new place, as it was."""
    aim = aimer(plan, relocator(plan["steps"]))
    seen, lost, changed = set(), [], []
    for step in (s for s in plan["steps"] if s["step"] in MOVING):
        destination = _destination(step)
        if not os.path.lexists(destination):
            lost.append(f"{destination}: missing")
            continue
        walk = Walk(progress, hash_small=False)
        walk.tree(destination)
        for new_path, new in walk.entries.items():
            old_path = step["src"] + new_path[len(destination):]
            old = entries.get(old_path)
            if old is None:
                changed.append(f"{new_path}: appeared since the plan (kept)")
                continue
            seen.add(old_path)
            gone, touched = differences(old, new, same_inode=step["step"] != "copy")
            if not _link_moved_right(old_path, old, new_path, new, aim):
                gone.append(f"the link points elsewhere now ({new[TARGET]!r})")
            lost += [f"{new_path}: {text}" for text in gone]
            changed += [f"{new_path}: {text}" for text in touched]
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
