"""The migration's proof: the manifest of the old tree, taken before anything moved, against what
stands at the new places after (and, for a rollback, at the old places again)."""

import os

from comfy_init.ops.migrate.manifest import LINK, TARGET, TYPE, Walk, differences, lexical_target
from comfy_init.ops.migrate.plan import relocator

SHOWN = 50


def _link_moved_right(old_path, old, new_path, new, relocate):
    if old[TYPE] != LINK or new[TYPE] != LINK:
        return True
    if os.path.isabs(old[TARGET]):
        return new[TARGET] == old[TARGET]
    aim = lexical_target(old_path, old[TARGET])
    return lexical_target(new_path, new[TARGET]) == (relocate(aim) or aim)


def verify_forward(layout, plan, entries, progress=None):
    """{"entries", "matched", "differences"}: every old entry at its new place, as it was."""
    steps = plan["steps"]
    relocate = relocator(steps)
    seen, found = set(), []
    for step in (s for s in steps if s["step"] in ("move", "copy")):
        if not os.path.lexists(step["dst"]):
            found.append(f"{step['dst']}: missing")
            continue
        walk = Walk(progress, hash_small=False)
        walk.tree(step["dst"])
        for new_path, new in walk.entries.items():
            old_path = step["src"] + new_path[len(step["dst"]):]
            old = entries.get(old_path)
            if old is None:
                found.append(f"{new_path}: not in the old tree")
                continue
            seen.add(old_path)
            why = differences(old, new, same_inode=step["step"] == "move")
            if not _link_moved_right(old_path, old, new_path, new, relocate):
                why.append(f"the link points elsewhere now ({new[TARGET]!r})")
            found += [f"{new_path}: {text}" for text in why]
    seen |= {merge["from"] for merge in plan["merged"] if os.path.isdir(merge["into"])}
    found += [f"{path}: not at its new place" for path in sorted(set(entries) - seen)]
    return {"entries": len(entries), "matched": len(seen), "differences": found[:SHOWN],
            "difference_count": len(found)}


def verify_rollback(plan, entries, progress=None):
    """Every old entry back at its old path, as it was; nothing else there."""
    copied = any(step["step"] == "copy" for step in plan["steps"])
    walk = Walk(progress, hash_small=copied)
    for path in plan["source"]["folders"]:
        root = os.path.join(plan["source"]["root"], path)
        if os.path.lexists(root):
            walk.tree(root)
    found = []
    for path, old in entries.items():
        new = walk.entries.get(path)
        if new is None:
            found.append(f"{path}: not back")
            continue
        found += [f"{path}: {text}" for text in differences(old, new, same_inode=not copied)]
        if old[TYPE] == LINK and new[TARGET] != old[TARGET]:
            found.append(f"{path}: the link holds {new[TARGET]!r}, was {old[TARGET]!r}")
    found += [f"{path}: not in the old tree" for path in sorted(set(walk.entries) - set(entries))]
    return {"entries": len(entries), "matched": len(entries) - len(found), "differences": found[:SHOWN],
            "difference_count": len(found)}
