"""Restoring a snapshot: extract into a sibling directory, then swap it in with one rename.

    instances/.restore-<id>-<token>/   the archive is read once into it (scan checks every member
                                       before writing it, and every hash against the manifest)
    instances/<id>                     swapped with the staging directory by renameat2's
                                       RENAME_EXCHANGE: atomic, so a kill -9 at any instant leaves
                                       the old tree or the new one under this name, never a mix

Members are created with O_EXCL and O_NOFOLLOW in directories the archive itself made, so
nothing is written through a link. The replaced tree lands in meta/trash (and the caller has
snapshotted it as `pre-restore` first). A staging directory left by a killed restore is moved to
the trash by the next restore of the same id: it may hold a replaced tree.

Where RENAME_EXCHANGE does not exist (not Linux, old kernels, some filesystems) the swap is two
renames, and a kill between them leaves the old tree in the staging name: the one window left.
"""

import ctypes
import errno
import functools
import os
import queue
import secrets
import shutil
import subprocess
import threading

from comfy_init.errors import error_for
from comfy_init.ops.snapshot.scan import scan
from comfy_init.problems import Problem
from comfy_init.store.clock import utc_stamp
from comfy_init.store.files import fsync_directory, unused_name, write_all, write_atomic
from comfy_init.tree.apply import apply_steps
from comfy_init.tree.planner import plan_tree

_AT_FDCWD = -100
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2


class _WriteBehind:
    """Writes and closes files on a thread of its own while the caller decompresses and hashes
    the next bytes: what `zstd -d | tar -x` gets from being two processes. os.write releases the
    GIL. The first error is raised again at the next submit or at `finish`."""

    def __init__(self, depth=32):
        self._queue = queue.Queue(maxsize=depth)
        self._error = None
        self._thread = threading.Thread(target=self._run, name="restore-writer", daemon=True)
        self._thread.start()

    def _run(self):
        while (job := self._queue.get()) is not None:
            if self._error is None:
                try:
                    job()
                except BaseException as exc:  # noqa: BLE001 (handed to the caller)
                    self._error = exc

    def submit(self, job):
        if self._error is not None:
            raise self._error
        self._queue.put(job)

    def finish(self):
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


class _File:
    def __init__(self, fd, member, owner, writer):
        self._fd, self._member, self._owner, self._writer = fd, member, owner, writer

    def write(self, data):
        self._writer.submit(functools.partial(write_all, self._fd, data))

    def close(self):
        self._writer.submit(self._close)

    def _close(self):
        try:
            os.fchmod(self._fd, self._member.mode & 0o777)
            if self._owner is not None:
                os.fchown(self._fd, *self._owner)
            os.utime(self._fd, (self._member.mtime, self._member.mtime))
        finally:
            os.close(self._fd)


class Extractor:
    """Writes scanned members under `root`; `skip` holds folders not to write (their members
    are still checked and hashed)."""

    def __init__(self, root, owner=None, skip=()):
        self.root, self.owner, self.skip = root, owner, tuple(skip)
        self._directories = []
        self._writer = _WriteBehind()

    def _path(self, member):
        return self._path_of(member.name)

    def _path_of(self, name):
        if any(name == s or name.startswith(s + "/") for s in self.skip):
            return None
        return os.path.join(self.root, name)

    def directory(self, member):
        if (path := self._path(member)) is not None:
            os.mkdir(path, 0o700)  # its own mode at the end: a read-only folder must still be filled
            self._directories.append((path, member))

    def file(self, member):
        path = self._path(member)
        if path is None:
            return None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        return _File(fd, member, self.owner, self._writer)

    def symlink(self, member):
        if (path := self._path(member)) is not None:
            os.symlink(member.linkname, path)
            if self.owner is not None:
                os.lchown(path, *self.owner)
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def hardlink(self, member):
        if (path := self._path(member)) is not None:
            os.link(os.path.join(self.root, member.linkname), path, follow_symlinks=False)

    def abort(self):
        try:
            self._writer.finish()
        except BaseException:  # noqa: BLE001 (the staging directory is thrown away anyway)
            pass

    def finish(self, manifest):
        """Exact mtimes from the manifest (the tar headers have whole seconds), folders last,
        deepest first, with their own modes."""
        self._writer.finish()  # every file written and closed before folders get their modes
        times = {e["path"]: e["mtime"] for e in manifest["entries"] if isinstance(e.get("mtime"), (int, float))}
        for entry in manifest["entries"]:
            if entry["type"] != "dir" and entry["path"] in times and (path := self._path_of(entry["path"])):
                os.utime(path, (times[entry["path"]],) * 2, follow_symlinks=False)
        for path, member in reversed(self._directories):  # deepest first: children do not touch them again
            if self.owner is not None:
                os.lchown(path, *self.owner)
            os.chmod(path, member.mode & 0o777)
            mtime = times.get(member.name, member.mtime)
            os.utime(path, (mtime, mtime))


def extract(layout, instance, snapshot, *, owner, nodes_as_refs, progress):
    """Extract `snapshot` into a fresh staging directory, complete it into an instance tree;
    return (staging path, manifest, custom nodes cloned). Nothing is left behind when it fails."""
    staging = layout.restore_staging(instance.id, secrets.token_hex(4))
    parent = os.stat(os.path.dirname(staging))
    os.mkdir(staging, 0o755)
    try:
        beside = snapshot.beside_manifest() or {}
        skip = [node["path"] for node in beside.get("git_nodes") or [] if node.get("remote")] if nodes_as_refs else []
        sink = Extractor(staging, owner, skip)
        try:
            manifest = scan(snapshot.archive, sink, progress)
        finally:
            sink.abort()  # the writer thread ends before anything else happens to the staging directory
        sink.finish(manifest)
        cloned = _clone_nodes(staging, manifest, skip) if nodes_as_refs else []
        _complete_tree(layout, instance, staging, manifest)
        if owner is not None:
            os.chown(staging, *owner)
    except BaseException:
        discard(staging, parent)
        raise
    return staging, manifest, cloned


def discard(staging, parent=None):
    """Remove a staging directory of ours; with `parent` (its folder's stat before), give that
    folder its times back, so a refused archive leaves instances/ as it found it."""
    shutil.rmtree(staging, ignore_errors=True)
    if parent is not None:
        os.utime(os.path.dirname(staging), ns=(parent.st_atime_ns, parent.st_mtime_ns))


def _clone_nodes(staging, manifest, skipped):
    cloned = []
    for node in manifest.get("git_nodes") or []:
        if node["path"] not in skipped:
            continue
        path = os.path.join(staging, node["path"])
        for args in (["clone", "--quiet", "--no-checkout", node["remote"], path],
                     ["-C", path, "checkout", "--quiet", node["commit"]]):
            done = subprocess.run(["git", "-c", "safe.directory=*", *args], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise error_for(Problem("failed", f"cannot clone {node['remote']} at {node['commit']}: "
                                        f"{done.stderr.strip()}", path=node["path"],
                                        fix="restore without --nodes-as-refs (the archive holds the files)"))
        cloned.append(node["path"])
    return cloned


def _complete_tree(layout, instance, staging, manifest):
    """temp/, folders the snapshot lacks, the models and input links: what `run` would make. A
    snapshot without output/ keeps the instance's current output (hard links: the old tree stays
    whole until the swap)."""
    old_output = instance.output
    if not manifest.get("include_output") and os.path.isdir(old_output) and not os.path.islink(old_output):
        _link_tree(old_output, os.path.join(staging, "output"))
    # Planned under the staging directory's own name, which the planner takes for its instance id
    # (the real id would be "another instance's directory" at this path) ...
    staged = layout.instance(os.path.basename(staging), root=staging)
    apply_steps(plan_tree(layout, staged, multi=True), layout.data)
    # ... and then the owner file names the instance the tree is for.
    restored = layout.instance(instance.id, root=staging)
    write_atomic(restored.owner_file, f"{instance.id}\n".encode())
    # The environment is not archived (the image's interpreter rebuilds it): its recorded packages
    # are, and the next start (or `venv rebuild`) reinstalls them into a fresh one.
    freeze = (manifest.get("venv") or {}).get("freeze")
    if freeze:
        write_atomic(restored.venv_restored, "".join(f"{line}\n" for line in freeze).encode())


def _link_tree(source, target):
    """A copy of the tree `source` made of hard links (bytes copied where links are refused)."""
    def link_or_copy(src, dst):
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError:
            shutil.copy2(src, dst, follow_symlinks=False)

    shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)


def _renameat2(source, target, flags):
    libc = ctypes.CDLL(None, use_errno=True)
    function = getattr(libc, "renameat2", None)
    if function is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), target)


def swap_in(staging, root):
    """Put `staging` at `root` atomically; return where the replaced tree now is (or None)."""
    if not os.path.lexists(root):
        try:
            _renameat2(staging, root, _RENAME_NOREPLACE)
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EINVAL):
                raise
            os.rename(staging, root)
        fsync_directory(os.path.dirname(root))
        return None
    try:
        _renameat2(staging, root, _RENAME_EXCHANGE)
        replaced = staging
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EINVAL):
            raise
        replaced = staging + ".replaced"
        os.rename(root, replaced)
        os.rename(staging, root)
    fsync_directory(os.path.dirname(root))
    return replaced


def to_trash(layout, instance_id, path, why):
    os.makedirs(layout.trash, exist_ok=True)
    target = unused_name(os.path.join(layout.trash, f"{instance_id}-{why}-{utc_stamp()}"))
    os.rename(path, target)
    return target


def clear_leftovers(layout, instance_id):
    """Staging directories of restores of `instance_id` that were killed: moved to the trash."""
    prefix = os.path.basename(layout.restore_staging(instance_id, ""))
    moved = []
    try:
        names = os.listdir(layout.instances)
    except FileNotFoundError:
        return moved
    for name in names:
        rest = name[len(prefix):]
        if name.startswith(prefix) and rest and "-" not in rest.split(".")[0]:
            moved.append(to_trash(layout, instance_id, os.path.join(layout.instances, name), "restore-leftover"))
    return moved

