"""Copies of shared models inside instance folders, and their fix. Used by `models verify` and by
`comfy-init check`:

    find_duplicates(layout, instance_ids=None) -> [Problem("model-duplicate", path=<instance copy>)]
    fix_duplicate(layout, problem) -> Fix(path, shared, kept, problem)   (problem None: fixed)
    fix_for_check(layout, problem) -> "what was done" | None, or raises   (check's fixer contract)
    duplicate_facts(problem) -> {"instance", "shared", "blake3", "size"}

Sizes first: shared/models is walked once (os.scandir, the DirEntry's lstat reused) into sizes;
only an instance file whose size some shared file has is hashed, and only those shared files of
that size. Hashes come from the cache in meta/ (store.hashcache) while the stat still matches.
A copy that is already a hard link of the shared file (same inode) is no duplicate.

The fix keeps ComfyUI working and loses nothing: both files are hashed again, in full, right
before acting; the instance copy is kept as a hard link in meta/trash/model-duplicates-<UTC>/
<id>/<path in the instance> (freed by `comfy-init instance purge`); then a hard link of the
shared file is renamed over the copy, so the path never disappears and a ComfyUI that has the old
file open or mapped keeps reading it. Hard links only: when the copy and shared/models (or
meta/trash) are on different filesystems nothing is changed, and the problem says so.

The shared inode is made read-only (chmod a-w) before the rename, so a non-root writer of the
instance's path in place (a custom node's updater) gets EACCES instead of rewriting the model of
every instance; root ignores modes (docs/models.md). Refused, nothing changed: the copy's owner
could not read the shared file; the kernel (fs.protected_hardlinks) forbids linking another user's
file; either file is not the inode, size, mtime and ctime that were hashed. The work is done under
meta/locks/.model-dedupe.lock with the temporary `.<name>.dedupe-<pid>-<hex>` beside the copy
(`check` reports and removes one a killed fix left); any exception undoes it.
"""

import errno
import os
import re
import shlex
import stat
from collections import namedtuple

from comfy_init.ops.models.checks import partial_target
from comfy_init.ops.models.hashing import Changed, cached_hash, hash_file
from comfy_init.ops.models.resolve import instance_ids as all_instance_ids
from comfy_init.ops.models.resolve import configured, resolve
from comfy_init.ops.models.walk import iter_listings, walk_files
from comfy_init.ops.models.walk import model_file as make_model_file
from comfy_init.problems import Problem
from comfy_init.store.clock import utc_stamp
from comfy_init.store import locks
from comfy_init.store.files import fsync_directory, unused_name
from comfy_init.store.hashcache import HashCache

Fix = namedtuple("Fix", "path shared kept problem")
Copy = namedtuple("Copy", "instance file")


def shared_by_size(layout, wanted):
    """{size: [ModelFile]} of the files under shared/models whose size is in `wanted`: one walk
    that makes a ModelFile only for those (the others cost their lstat and nothing more)."""
    sizes = {}
    for directory_key, entries in iter_listings(layout, layout.shared_models, []):
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_size in wanted:
                sizes.setdefault(info.st_size, []).append(make_model_file(entry, directory_key, info))
    return sizes


def instance_copies(layout, resolutions):
    """Copy(instance id, ModelFile) for every file in the instances' copy folders (each path once)."""
    seen, copies = set(), []
    for resolution in resolutions:
        for root in resolution.copy_roots:
            for model_file in walk_files(layout, root)[0]:
                if model_file.path not in seen:
                    seen.add(model_file.path)
                    copies.append(Copy(resolution.instance.id, model_file))
    return copies


def duplicate_problem(copy, shared_file, digest):
    return Problem(
        "model-duplicate", f"a copy of {shared_file.path} ({copy.file.info.st_size} bytes, same BLAKE3)",
        path=copy.file.path,
        fix="`comfy-init models verify --fix` replaces it with a hard link of the shared file "
            "(the copy is kept in meta/trash until `comfy-init instance purge`)",
        details=(f"instance {copy.instance}, {copy.file.info.st_size} bytes, blake3 {digest}, shared file: "
                 f"{shared_file.path}",))


_FACTS = re.compile(r"\Ainstance (?P<instance>\S+), (?P<size>\d+) bytes, blake3 (?P<blake3>[0-9a-f]{64}), "
                    r"shared file: (?P<shared>.+)\Z", re.S)


def duplicate_facts(problem):
    """The details of a model-duplicate problem as a dict: instance, shared, blake3, size (one
    detail line, the shared path last so that any path reads back whole)."""
    for line in problem.details:
        match = _FACTS.match(line)
        if match:
            facts = match.groupdict()
            facts["size"] = int(facts["size"])
            return facts
    return {"instance": None, "shared": None, "blake3": None, "size": None}


def duplicates_among(cache, sizes, copies, progress=None):
    """model-duplicate problems of `copies` against `sizes` (shared_by_size); hashes via `cache`."""
    problems = []
    for copy in copies:
        info = copy.file.info
        candidates = sizes.get(info.st_size) if info.st_size else None
        if not candidates or partial_target(os.path.basename(copy.file.path)) is not None:
            continue
        if any((c.info.st_dev, c.info.st_ino) == (info.st_dev, info.st_ino) for c in candidates):
            continue  # already a hard link of the shared file
        try:
            digest = cached_hash(cache, copy.file, progress)
        except OSError:
            continue  # unreadable: verify reports it
        for candidate in candidates if digest else ():
            try:
                if cached_hash(cache, candidate, progress) == digest:
                    problems.append(duplicate_problem(copy, candidate, digest))
                    break
            except OSError:
                continue
    return problems


def find_duplicates(layout, instance_ids=None, cache=None, progress=None, app_dir=None):
    """model-duplicate Problems for the copies of shared models in the instances' folders (all
    instances, or `instance_ids`). Learnt hashes are saved to the cache (pass `cache` to save it
    yourself). `progress(nbytes)` is called as files are hashed; `app_dir`: see verify_models."""
    ids = all_instance_ids(layout) if instance_ids is None else list(instance_ids)
    entries = configured(layout)
    copies = instance_copies(layout, [resolve(layout, i, entries.get(i), app_dir) for i in ids])
    if not copies:
        return []
    sizes = shared_by_size(layout, {c.file.info.st_size for c in copies if c.file.info.st_size})
    if not sizes:
        return []  # no copy has the size of a shared file: nothing to hash, the cache is not even read
    own_cache = cache is None
    cache = HashCache.load(layout) if own_cache else cache
    problems = duplicates_among(cache, sizes, copies, progress)
    if own_cache:
        cache.save_or_say_why()  # the findings stand without it
    return problems


def _refused(problem, why, fix):
    return Problem("failed", f"not replaced: {why}", path=problem.path, fix=fix)


def _by_hand(facts, path):
    return (f"nothing was changed; replace it yourself: `ln -f {shlex.quote(facts['shared'])} {shlex.quote(path)}` "
            "on one filesystem, else delete the copy")


def _verified(problem, facts):
    """Hash both files again, in full: (the copy's lstat, the shared file's lstat) as hashed, or a
    Problem."""
    try:
        copy_info, shared_info = os.lstat(problem.path), os.lstat(facts["shared"])
        if (copy_info.st_dev, copy_info.st_ino) == (shared_info.st_dev, shared_info.st_ino):
            return copy_info, shared_info
        copy_hash = hash_file(problem.path, copy_info)
        shared_hash = hash_file(facts["shared"], shared_info)
    except (OSError, Changed) as error:
        return _refused(problem, f"it or {facts['shared']} changed or cannot be read ({error})",
                        "run `comfy-init models verify` again once downloads are done")
    if copy_hash != shared_hash or copy_hash != facts.get("blake3"):
        return _refused(problem, f"it is no longer identical to {facts['shared']}",
                        "nothing was changed; run `comfy-init models verify` again")
    return copy_info, shared_info


def _owner_can_read(copy_info, shared_info):
    """Whether the copy's owner (whose ComfyUI reads it) may read the shared file's inode."""
    if copy_info.st_uid == 0:
        return True
    if shared_info.st_uid == copy_info.st_uid:
        return bool(shared_info.st_mode & stat.S_IRUSR)
    if shared_info.st_gid == copy_info.st_gid:
        return bool(shared_info.st_mode & stat.S_IRGRP)
    return bool(shared_info.st_mode & stat.S_IROTH)


def _trash_path(layout, facts, path, stamp, made):
    """Where the copy is kept; the folders made for it are appended to `made` (removed again when
    nothing is kept)."""
    root = os.path.realpath(layout.instance(facts["instance"]).root)
    real = os.path.realpath(path)
    relative = os.path.relpath(real, root) if real.startswith(root + os.sep) else os.path.basename(path)
    target = os.path.join(layout.trash_entry(f"model-duplicates-{stamp}"), facts["instance"], relative)
    missing, folder = [], os.path.dirname(target)
    while folder and not os.path.isdir(folder) and folder != os.path.dirname(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue
        made.append(folder)
    return unused_name(target)


def _unchanged(before, now):
    """Whether two lstat results are of one inode that nothing wrote or linked in between."""
    return (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns, before.st_ctime_ns) == (
        now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns, now.st_ctime_ns)


def _link_refusal(facts, step):
    """Why os.link (EPERM/EACCES: fs.protected_hardlinks) or the chmod a-w of the shared file was
    refused: it belongs to another user."""
    try:
        owner = os.lstat(facts["shared"]).st_uid
    except OSError:
        owner = "?"
    what = ("the kernel (fs.protected_hardlinks) lets only its owner or root hard-link it" if step == "link"
            else "only its owner or root can make it read-only (chmod a-w)")
    return (f"the shared file {facts['shared']} belongs to another user (uid {owner}; this runs as uid "
            f"{os.geteuid()}) and {what}",
            f"nothing was changed; run the fix as uid {owner} (its owner) or as root")


def fix_duplicate(layout, problem, stamp=None):
    """Replace the instance copy a model-duplicate `problem` names with a hard link of the shared
    file (see the module's docstring). Fix.problem is None when done (or when it already was)."""
    facts = duplicate_facts(problem)
    if problem.kind != "model-duplicate" or facts["shared"] is None:
        raise ValueError(f"not a model-duplicate problem of find_duplicates: {problem!r}")
    checked = _verified(problem, facts)
    if isinstance(checked, Problem):
        return Fix(problem.path, facts.get("shared"), None, checked)
    copy_info, shared_info = checked
    if os.path.samestat(copy_info, shared_info):
        return Fix(problem.path, facts["shared"], None, None)
    if not _owner_can_read(copy_info, shared_info):
        return Fix(problem.path, facts["shared"], None, _refused(
            problem, f"its owner (uid {copy_info.st_uid}, gid {copy_info.st_gid}) could not read {facts['shared']} "
                     f"(owner uid {shared_info.st_uid}, gid {shared_info.st_gid}, mode "
                     f"{stat.S_IMODE(shared_info.st_mode):04o}): the instance would lose the model",
            f"nothing was changed; make the shared file readable by uid {copy_info.st_uid} "
            f"(`chmod a+r {shlex.quote(facts['shared'])}`) and run the fix again, or keep the copy"))
    os.makedirs(layout.locks, exist_ok=True)
    lock = locks.try_lock(layout.model_dedupe_lock)
    if lock is None:
        return Fix(problem.path, facts["shared"], None, _refused(
            problem, "another `models verify --fix` or `check --fix` is replacing copies",
            "nothing was changed; run it again when that one is done"))
    try:
        return _replace(layout, problem, facts, copy_info, shared_info, stamp)
    finally:
        lock.release()


def _replace(layout, problem, facts, copy_info, shared_info, stamp):
    """Under the dedupe lock: link the shared file beside the copy, prove both still the inodes
    that were hashed, keep the copy in the trash, make the shared inode read-only, rename."""
    directory, name = os.path.split(problem.path)
    temp = os.path.join(directory, f".{name}.dedupe-{os.getpid()}-{os.urandom(4).hex()}")
    kept, made, mode, step = None, [], None, "check"
    try:
        if not _unchanged(shared_info, os.lstat(facts["shared"])):
            raise Changed(facts["shared"])
        step = "link"
        os.link(facts["shared"], temp)
        step = "check"
        # The link sets the inode's ctime: the rest of its identity must be what was hashed.
        if _stat_key(os.lstat(temp))[:4] != _stat_key(shared_info)[:4]:
            raise Changed(facts["shared"])
        if _stat_key(copy_info) != _stat_key(os.lstat(problem.path)):
            raise Changed(problem.path)
        kept = _trash_path(layout, facts, problem.path, stamp or utc_stamp(), made)
        os.link(problem.path, kept)
        if _stat_key(copy_info)[:4] != _stat_key(os.lstat(problem.path))[:4]:
            raise Changed(problem.path)
        linked = os.lstat(temp)
        if linked.st_mode & 0o222:
            step, mode = "chmod", stat.S_IMODE(linked.st_mode)
            os.chmod(temp, mode & ~0o222)  # a regular file we linked: chmod follows no link here
            step = "rename"
        os.rename(temp, problem.path)
    except BaseException as error:
        _undo(temp, kept, problem.path, made, mode)
        if not isinstance(error, (OSError, Changed)):
            raise  # KeyboardInterrupt and the like: undone, then on its way
        denied = isinstance(error, OSError) and error.errno in (errno.EPERM, errno.EACCES)
        if denied and step in ("link", "chmod"):
            why, fix = _link_refusal(facts, step)
            return Fix(problem.path, facts["shared"], None, _refused(problem, why, fix))
        cross = isinstance(error, OSError) and error.errno == errno.EXDEV
        why = "it is on another filesystem than shared/models or meta/trash" if cross else _plain(error, temp)
        return Fix(problem.path, facts["shared"], None, _refused(problem, why, _by_hand(facts, problem.path)))
    try:
        fsync_directory(directory)
    except OSError:
        pass  # done: the rename stands (it is durable at the next sync)
    return Fix(problem.path, facts["shared"], kept, None)


def _plain(error, temp):
    """The error without the temporary's name (which nothing else shows)."""
    if isinstance(error, OSError):
        paths = [p for p in (error.filename, error.filename2) if p and p != temp]
        return f"{error.strerror or error}" + (f": {paths[0]}" if paths else "")
    return f"{error} changed meanwhile"


def fix_for_check(layout, problem):
    """fix_duplicate in the shape of `comfy-init check`'s fixers: the line that says what was done,
    None when there was nothing to do (the copy already is a link of the shared file), or a
    ComfyInitError carrying why nothing was changed."""
    from comfy_init.errors import error_for

    outcome = fix_duplicate(layout, problem)
    if outcome.problem is not None:
        raise error_for(outcome.problem)
    if outcome.kept is None:
        return None
    return (f"replaced {outcome.path} with a hard link of {outcome.shared} "
            f"(made read-only, chmod a-w; the copy is kept as {outcome.kept})")


def _stat_key(info):
    """What proves a file unchanged since it was hashed: its inode, size, mtime and ctime (which no
    one can set back: a rewrite that keeps its mtime still moves it)."""
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def _undo(temp, kept, path, made=(), mode=None):
    """Put back what a refused or interrupted fix did: the temporary link and the trash link
    removed, the shared inode's mode restored, the trash folders it made removed."""
    if mode is not None and os.path.lexists(temp):
        try:
            os.chmod(temp, mode)
        except OSError:
            pass
    for leftover in (temp, kept):
        if leftover and os.path.lexists(leftover) and leftover != path:
            try:
                if leftover == temp or os.path.samefile(leftover, path):
                    os.unlink(leftover)
            except OSError:
                pass
    for folder in reversed(list(made)):
        try:
            os.rmdir(folder)
        except OSError:
            pass
