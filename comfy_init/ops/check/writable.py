"""Directories the user that runs an instance's ComfyUI cannot write.

Which user: the registry records no uid per instance (PUID/PGID are container settings), so it is
`--puid/--pgid` when given, else the owner of the instance's directory, which every start as root
with PUID gives to PUID. Judged from the mode bits, owner and group (with the uid's supplementary
groups when the passwd database knows it); ACLs and read-only mounts are not seen. uid 0 writes
everything. Looked at: the instance's own folders and the folders directly in them, and
shared/input; never deeper (cost does not grow with the data).
"""

import os
import stat

from comfy_init.problems import Problem


def find_unwritable(ctx):
    problems, layout, users = [], ctx.layout, set()
    for instance_id in ctx.instance_ids:
        instance = layout.instance(instance_id)
        user = _user_of(ctx, instance)
        if user is None:
            continue
        users.add(user)
        for path in instance.own_folders():
            problems += _judge(path, user, f"runs instance {instance_id!r}", top=True)
            problems += [p for sub in _subdirectories(path) for p in _judge(sub, user, f"runs instance {instance_id!r}")]
    for user in sorted(users):
        problems += _judge(layout.shared_input, user, "runs an instance (every instance writes shared/input)")
    return _once_per_path(problems)


def _user_of(ctx, instance):
    """(uid, gid, how we know) for the instance, or None when it has no directory."""
    if ctx.puid is not None:
        return ctx.puid, ctx.pgid if ctx.pgid is not None else ctx.puid, "--puid"
    try:
        info = os.stat(instance.root)
    except OSError:
        return None
    return info.st_uid, info.st_gid if ctx.pgid is None else ctx.pgid, f"the owner of {instance.root}"


def _subdirectories(path):
    try:
        with os.scandir(path) as entries:
            return sorted(entry.path for entry in entries if entry.is_dir(follow_symlinks=False))
    except OSError:
        return []


def _judge(path, user, role, top=False):
    uid, gid, source = user
    try:
        info = os.stat(path)
    except OSError:
        return []  # missing (a start creates it) or unreachable (the tree checker reports that)
    if not stat.S_ISDIR(info.st_mode) or can_write(info, uid, _groups(uid, gid)):
        return []
    owner = f"{uid}:{gid}"
    fix = (f"`chown {owner} {path}` (a start as root with PUID={uid} PGID={gid} does this too)" if top
           else f"`chown -R {owner} {path}`")
    return [Problem("not-writable", f"cannot be written by uid {uid} (gid {gid}), which {role} ({source}): "
                    f"it is owned by {info.st_uid}:{info.st_gid} with mode {stat.filemode(info.st_mode)}",
                    path=path, fix=f"{fix}, or pass the uid that runs it with --puid/--pgid")]


def can_write(info, uid, groups):
    """Whether `uid` (in `groups`) may create and remove entries in the directory `info`."""
    if uid == 0:
        return True
    if info.st_uid == uid:
        bits = info.st_mode >> 6
    elif info.st_gid in groups:
        bits = info.st_mode >> 3
    else:
        bits = info.st_mode
    return bits & 0o3 == 0o3  # write and search


_GROUPS = {}


def _groups(uid, gid):
    key = (uid, gid)
    if key not in _GROUPS:
        import pwd

        try:
            _GROUPS[key] = frozenset(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
        except (KeyError, OSError):
            _GROUPS[key] = frozenset([gid])
    return _GROUPS[key]


def _once_per_path(problems):
    seen, unique = set(), []
    for problem in problems:
        if problem.path not in seen:
            seen.add(problem.path)
            unique.append(problem)
    return unique
