"""`comfy-init models verify [--fix] [--instance ID]`: returns a Result and prints nothing.

One walk of shared/models and of each instance's copy folders (ops.models.resolve), then, per
file: a left-over download, empty, a damaged safetensors header, or its BLAKE3 (from the cache
while the stat matches: re-verifying an unchanged tree reads no file). Files modified in the last
RECENT_SECONDS, and left-over downloads, are looked at again after `settle` seconds: those that
changed are still being written (`model-growing`), and two such downloads of one file name are
`model-concurrent-download`. Then instance copies of shared files (`model-duplicate`), which
`fix` replaces through duplicates.fix_duplicate. Learnt hashes are merged into the cache.
"""

import os
import time

from comfy_init.errors import ComfyInitError, UsageError
from comfy_init.ops.models import checks
from comfy_init.ops.models.duplicates import duplicates_among, fix_duplicate, instance_copies
from comfy_init.ops.models.hashing import cached_hash
from comfy_init.ops.models.resolve import instance_ids as all_instance_ids
from comfy_init.ops.models.resolve import configured, resolve
from comfy_init.ops.models.walk import cache_key, iter_listings
from comfy_init.ops.models.walk import model_file as make_model_file
from comfy_init.problems import Problem
from comfy_init.results import Result
from comfy_init.store import conflicts
from comfy_init.store.clock import utc_stamp
from comfy_init.store.files import io_failure
from comfy_init.store.hashcache import HashCache, hashed_in

COMMAND = "models verify"
SETTLE_SECONDS = 2.0


class _Run:
    """What one verify learns as it goes."""

    def __init__(self, layout, progress):
        self.layout = layout
        self.cache = HashCache.load(layout)
        self.problems, self.lines = [], []
        self.partial, self.recent, self.to_hash, self.changed = [], [], [], set()
        self.hashed_files = self.hashed_bytes = 0
        self.progress = progress
        self.bad = set()  # paths already reported (not hashed, not taken as duplicates)
        self.fixed = []
        self.shared_files = self.shared_bytes = 0
        self.in_cache = 0  # files whose key the loaded cache has: when all its keys, none is gone
        self.recent_after = time.time_ns() - int(checks.RECENT_SECONDS * 1e9)


def verify_models(layout, instance_ids=None, *, fix=False, progress=None, settle=SETTLE_SECONDS, pause=time.sleep,
                  app_dir=None):
    """`progress(files, bytes)` is called while hashing; `pause(seconds)` is the wait between the
    two looks at recently changed files (tests pass one that writes); `app_dir` the ComfyUI
    checkout whose extra_model_paths.yaml every instance reads (None: not looked at)."""
    import gc

    # One object per file: without this, the collector would walk them all again and again while
    # a large tree is listed (a third of a re-verify's time); nothing here makes cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _verify(layout, instance_ids, fix, progress, settle, pause, app_dir)
    except ComfyInitError as error:
        return Result.failure(COMMAND, error)
    except OSError as exc:
        return Result.failure(COMMAND, io_failure(exc.filename or "", "failed", exc))
    finally:
        if collecting:
            gc.enable()


def _selected(layout, instance_ids):
    known = all_instance_ids(layout)
    if not instance_ids:
        return known
    problems = [p for i in instance_ids for p in conflicts.id_problems(i)]
    if problems:
        raise UsageError(*problems)
    unknown = [i for i in instance_ids if i not in known]
    if unknown:
        from comfy_init.errors import error_for

        raise error_for(*[Problem("unknown-instance", f"no instance {i!r} in {layout.instances}",
                                  fix="`comfy-init instance list` shows them") for i in unknown])
    return list(dict.fromkeys(instance_ids))


def _verify(layout, instance_ids, fix, progress, settle, pause, app_dir):
    started = time.monotonic()
    ids = _selected(layout, instance_ids)
    if not os.path.isdir(layout.shared_models):
        raise ComfyInitError(Problem("missing-path", "shared/models does not exist", path=layout.shared_models,
                                     fix="pass the data directory with --data, or create an instance first"))
    run = _Run(layout, progress)
    entries = configured(layout)
    resolutions = [resolve(layout, i, entries.get(i), app_dir) for i in ids]
    # One problem per file and finding: the checkout's yaml is every instance's.
    run.problems += list({(p.kind, p.path, p.message): p for r in resolutions for p in r.problems}.values())
    copies = instance_copies(layout, resolutions)
    candidates = _walk_shared(run, {c.file.info.st_size for c in copies})
    for copy in copies:
        _judge(run, copy.file)
    _hash_all(run)
    _look_again(run, settle, pause)
    sound = [c for c in copies if c.file.path not in run.bad]
    sizes = {}
    for model_file in candidates:
        if model_file.path not in run.bad:
            sizes.setdefault(model_file.info.st_size, []).append(model_file)
    duplicates = duplicates_among(run.cache, sizes, sound)
    run.problems += _fixed(run, duplicates) if fix else duplicates
    _forget_gone(run, resolutions)
    warning = run.cache.save_or_say_why()
    run.lines += [warning] if warning else []
    return _result(run, ids, copies, time.monotonic() - started)


def _walk_shared(run, wanted):
    """Judge every file of shared/models as the walk lists it, keeping only those with the size of
    an instance copy (duplicate candidates): a tree of 100,000 sound files leaves no list. A file
    the cache knows as hashed at its stat is _judge's first case, done here inline: one lookup by
    name in its directory's table."""
    unreadable, candidates = [], []
    files = size_total = hits = 0
    judge, recent, recent_after, directory = _judge, run.recent, run.recent_after, run.cache.directory
    for directory_key, entries in iter_listings(run.layout, run.layout.shared_models, unreadable):
        names = directory(directory_key)
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone between the listing and the stat
            files += 1
            size_total += info.st_size
            if names and hashed_in(names, entry.name, info):
                hits += 1
                if info.st_mtime_ns > recent_after:
                    recent.append(make_model_file(entry, directory_key, info))
            else:
                judge(run, make_model_file(entry, directory_key, info))
            if info.st_size in wanted:
                candidates.append(make_model_file(entry, directory_key, info))
    run.shared_files, run.shared_bytes = files, size_total
    run.in_cache += hits
    run.problems += [Problem("cannot-look", "cannot be listed", path=d, fix="make it readable for comfy-init")
                     for d in unreadable]
    return candidates


def _judge(run, model_file):
    """Sort one file: left-over download, empty, damaged, or to be hashed (unless cached)."""
    info = model_file.info
    known = run.cache.lookup(model_file.key, info)
    if known is not None and known[0] is not None:
        # Hashed before, and unchanged since: it was sound then (left-over downloads, empty and
        # damaged files are never hashed). The common case of a re-verify: no more work.
        run.in_cache += 1
        if info.st_mtime_ns > run.recent_after:
            run.recent.append(model_file)
        return
    run.in_cache += run.cache.has(model_file.key)
    name = model_file.name
    if checks.PARTIAL_NAME.search(name):
        run.partial.append(model_file)
        run.bad.add(model_file.path)
        return
    if info.st_mtime_ns > run.recent_after:
        run.recent.append(model_file)
    if not info.st_size:
        run.bad.add(model_file.path)
        run.problems.append(Problem("model-incomplete", "is empty (0 bytes)", path=model_file.path,
                                    fix="download it again, or remove it"))
        return
    if checks.is_safetensors(name):
        damage = known[1] if known is not None and known[1] is not None else _header(run, model_file)
        if damage:
            run.bad.add(model_file.path)
            run.problems.append(Problem("model-damaged", damage, path=model_file.path,
                                        fix="download it again (a damaged file makes ComfyUI fail to load it)"))
            return
    if known is None or known[0] is None:
        run.to_hash.append(model_file)


def _header(run, model_file):
    try:
        damage = checks.safetensors_damage(model_file.path, model_file.info.st_size)
    except OSError as exc:
        return f"cannot be read: {os.strerror(exc.errno) if exc.errno else exc}"
    run.cache.record(model_file.key, model_file.info, damage=damage)
    return damage


def _hash_all(run):
    total = [0]

    def advance(count):
        total[0] += count
        if run.progress is not None:
            run.progress(run.hashed_files, total[0])

    for model_file in run.to_hash:
        try:
            digest = cached_hash(run.cache, model_file, advance)
        except OSError as exc:
            run.bad.add(model_file.path)
            run.problems.append(Problem("cannot-look", f"cannot be read: {os.strerror(exc.errno or 0)}",
                                        path=model_file.path, fix="make it readable for comfy-init"))
            continue
        run.hashed_files += 1
        if digest is None:
            run.changed.add(model_file.path)
    run.hashed_bytes = total[0]


def _look_again(run, settle, pause):
    """Growing files: changed while hashed, or changed between the walk and a second look."""
    candidates = [f for f in run.partial + run.recent if f.path not in run.changed]
    if candidates:
        pause(settle)
    growing = [f for f in run.partial + run.recent if f.path in run.changed]
    growing += [f for f in candidates if checks.grew(f.info, checks.look_again(f.path))]
    by_target, growing_paths = {}, {f.path for f in growing}
    for model_file in growing:
        target = checks.partial_target(model_file.name) or model_file.name
        by_target.setdefault(target, []).append(model_file)
    for target, files in sorted(by_target.items()):
        if len(files) > 1:
            run.problems.append(Problem(
                "model-concurrent-download", f"{len(files)} downloads of {target} are being written at once",
                path=files[0].path, details=[f"also: {f.path}" for f in files[1:]],
                fix="let one download finish and stop the others (in the other instances' ComfyUI-Manager), "
                    "then remove their left-over files"))
    concurrent = {f.path for files in by_target.values() if len(files) > 1 for f in files}
    for model_file in growing:
        run.bad.add(model_file.path)
        if model_file.path not in concurrent:
            run.problems.append(Problem("model-growing", "is still being written (size or mtime changed between "
                                        "two looks): a download in progress", path=model_file.path,
                                        fix="wait for the download to finish, then run `comfy-init models verify` again"))
    for model_file in run.partial:
        if model_file.path not in growing_paths:
            target = checks.partial_target(model_file.name) or model_file.name
            run.problems.append(Problem(
                "model-incomplete", f"a download of {target} left over (it is not being written)",
                path=model_file.path, fix="download the model again, then remove this file"))


def _fixed(run, duplicates):
    stamp, left = utc_stamp(), []
    for problem in duplicates:
        outcome = fix_duplicate(run.layout, problem, stamp=stamp)
        if outcome.problem is not None:
            left.append(outcome.problem)
        elif outcome.kept is not None:
            run.lines.append(f"replaced {outcome.path} with a hard link of {outcome.shared} "
                             f"(made read-only, chmod a-w; the copy is kept as {outcome.kept})")
            run.fixed.append({"path": outcome.path, "shared": outcome.shared, "kept": outcome.kept})
            run.cache.forget(cache_key(run.layout, outcome.path))  # its inode changed: hashed afresh next time
    return left


def _forget_gone(run, resolutions):
    """Drop the cache entries of files under the walked folders that are no longer there. Every
    file judged whose key the loaded cache holds was counted: when that is as many as the cache
    holds under the walked folders, none is gone (the common case: no set of 100,000 keys is
    built, no file looked at again); otherwise each entry under a walked folder is (lstat)."""
    prefixes = tuple(cache_key(run.layout, p).rstrip("/") + "/" for p in
                     [run.layout.shared_models] + [root for r in resolutions for root in r.copy_roots])
    tables = [(d, names) for d, names in run.cache.dirs.items() if (d + "/").startswith(prefixes)]
    if run.in_cache == sum(len(names) for _, names in tables):
        return
    for directory, names in tables:
        for name in list(names):
            key = f"{directory}/{name}"
            if not os.path.lexists(key if os.path.isabs(key) else os.path.join(run.layout.data, key)):
                run.cache.forget(key)


def _result(run, ids, copies, seconds):
    kinds = {}
    for problem in run.problems:
        kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
    shared_bytes = run.shared_bytes
    data = {"instances": ids, "shared_files": run.shared_files, "shared_bytes": shared_bytes,
            "instance_files": len(copies), "hashed_files": run.hashed_files, "hashed_bytes": run.hashed_bytes,
            "fixed": run.fixed, "found": kinds, "cache": run.layout.model_hash_cache, "seconds": round(seconds, 3)}
    summary = (f"{run.shared_files} files in shared/models ({shared_bytes / 2**30:.2f} GiB), {len(copies)} in instance "
               f"folders of {len(ids)} instance(s); hashed {run.hashed_files} ({run.hashed_bytes / 2**20:.1f} MiB)")
    verdict = "ok: nothing to report" if not run.problems else "found: " + ", ".join(
        f"{count} {kind}" for kind, count in sorted(kinds.items()))
    return Result(COMMAND, data, [summary, *run.lines, verdict], run.problems)

