"""What a migration plan says to a person, and whether the target has room for what it copies."""

import os

from comfy_init.ops.units import human_size
from comfy_init.problems import Problem

# Room kept free beyond the bytes to copy: filesystems need some for their own metadata.
SPARE_BYTES = 16 * 1024 * 1024


def space_problems(plan, layout):
    if not plan.copy_bytes:
        return []
    probe = layout.data
    while not os.path.isdir(probe):
        probe = os.path.dirname(probe)
    info = os.statvfs(probe)
    free = info.f_bavail * info.f_frsize
    if free >= plan.copy_bytes + SPARE_BYTES:
        return []
    return [Problem("cannot-create", f"has {human_size(free)} free, and the migration copies {human_size(plan.copy_bytes)} "
                    "to it (the old tree is on another filesystem)", path=probe,
                    fix="free space there, or mount the old tree's disk at its new place instead of copying")]


def plan_lines(plan, dry_run):
    source = plan.source
    lines = [f"{'plan' if dry_run else 'migrating'}: {source.kind} layout at {source.root} -> instance "
             f"{plan.instance_id!r}"]
    for name, folder in sorted(plan.folders.items()):
        lines.append(f"  {name}/: {folder['entries']} entries, {human_size(folder['bytes'])}: {folder['how']} "
                     f"to {folder['to']}")
    for item in plan.duplicates:
        lines.append(f"  same file twice: {item['path']} equals {item['kept']}; one copy kept, the incoming one "
                     f"parked in {item['parked']}")
    for item in plan.renamed:
        lines.append(f"  conflict: {item['path']} differs from {item['because'].split(' differs')[0]}: both kept, "
                     f"the incoming one as {item['to']}")
    for path in plan.unreadable:
        lines.append(f"  unreadable for this user: {path}: moved by rename as it is, its content not hashed")
    relinks = sum(1 for step in plan.steps if step["step"] == "relink")
    if relinks:
        lines.append(f"  {relinks} relative link(s) rewritten so they point where they pointed")
    if plan.copy_bytes:
        lines.append(f"  {human_size(plan.copy_bytes)} to copy (another filesystem): copied, verified, then removed")
    lines += [f"  note: {note}" for note in plan.notes]
    lines.append("  old places keep working: each moved folder is replaced by a relative link to its new place")
    if dry_run:
        lines.append("nothing was changed; run again with --yes to migrate")
    return lines
