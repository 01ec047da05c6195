"""Writing one snapshot: the archive, then the manifest beside it, then the rename.

The archive is written as `.<name>.partial` (a dot name no listing shows), fsynced, and renamed to
`<name>.tar.zst` only when complete, after its manifest copy: a snapshot killed at any instant
leaves no file that looks complete. Leftover partial files are removed by the next snapshot of
the same instance, under the snapshot lock every writer holds (so any partial file seen then
belongs to a dead writer).

Files of a running instance are read as they are; one whose size changes while it is read is
archived as read (padded or cut to the size it had when opened) and flagged in the manifest.
"""

import json
import os
import secrets
import stat
import tarfile
import threading

from comfy_init.errors import UsageError, error_for
from comfy_init.ops.snapshot import collect
from comfy_init.ops.snapshot.archive import MANIFEST_MEMBER, ArchiveWriter, hasher
from comfy_init.problems import Problem
from comfy_init.store import claims, conflicts, locks
from comfy_init.store.clock import utc_stamp
from comfy_init.store.files import fsync_directory, write_atomic
from comfy_init.store.registry import Registry

_PARTIAL_SUFFIXES = (".partial", ".db")


class _HashingReader:
    """Reads exactly `size` bytes of `fd` for tarfile, hashing them; pads with zeros when the file
    shrank while being read (tarfile needs exactly the size it wrote in the header)."""

    def __init__(self, fd, size):
        self._fd = fd
        self._left = size
        self.hash = hasher()
        self.short = False

    def read(self, n):
        n = min(n, self._left)
        parts, got = [], 0
        while got < n:
            chunk = os.read(self._fd, n - got)
            if not chunk:
                self.short = True
                parts.append(bytes(n - got))
                break
            parts.append(chunk)
            got += len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._left -= len(data)
        self.hash.update(data)
        return data


def _is_live(layout, instance_id):
    if locks.held_elsewhere(layout.lock_path(instance_id)):
        return True
    claim = Registry(layout).load()["claims"].get(instance_id)
    return claim is not None and claims.judge(layout, instance_id, claim) != claims.STALE


class _WriteBack:
    """The archive file, for the compressor: every 64 MiB a thread of its own fdatasyncs what is
    written so far, so the disk writes alongside the compressor and the fsync before the rename
    finds little left to do (instead of the whole archive at the end)."""

    STEP = 64 << 20

    def __init__(self, file):
        self._file, self._since, self._done = file, 0, False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snapshot-write-back", daemon=True)
        self._thread.start()

    def write(self, data):
        written = self._file.write(data)
        self._since += len(data)
        if self._since >= self.STEP:
            self._since = 0
            self._wake.set()
        return written

    def flush(self):
        self._file.flush()

    def _run(self):
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._done:
                return
            try:
                os.fdatasync(self._file.fileno())
            except OSError:
                pass  # the fsync before the rename reports what matters

    def close(self):
        self._done = True
        self._wake.set()
        self._thread.join()


def take_snapshot(layout, instance_id, *, kind="manual", note=None, include_output=False, live=None,
                  progress=None):
    """Write a snapshot of `instance_id`; returns (archive path, manifest). `live=False` from
    callers that hold the instance's lock (delete, restore)."""
    problems = conflicts.id_problems(instance_id)
    if problems:
        raise UsageError(*problems)
    instance = layout.instance(instance_id)
    if not os.path.isdir(instance.root) or os.path.islink(instance.root):
        raise error_for(Problem("unknown-instance", f"no instance directory for {instance_id!r}", path=instance.root,
                                fix="`comfy-init instance list` shows the instances"))
    config = Registry(layout).load()["instances"].get(instance_id)
    live = _is_live(layout, instance_id) if live is None else live
    head = collect.manifest_head(instance, new_name(), config, live=live, note=note, kind=kind, include_output=include_output)
    return write_snapshot(layout, instance, head, include_output=include_output, progress=progress)


def new_name():
    return f"{utc_stamp()}-{secrets.token_hex(4)}"


def write_snapshot(layout, instance, head, *, include_output, progress=None):
    """Write the snapshot `head["name"]` of `instance`; returns (archive path, full manifest)."""
    name, directory = head["name"], layout.snapshot_dir(instance.id)
    os.makedirs(directory, exist_ok=True)
    with locks.hold(layout.snapshot_lock(instance.id), timeout=60):
        remove_partials(directory)
        partial = os.path.join(directory, f".{name}.partial")
        database_temp = os.path.join(directory, f".{name}.db")
        try:
            manifest = _write_archive(partial, database_temp, instance, head, include_output, progress)
            manifest_bytes = json.dumps(dict(manifest, archive_bytes=os.path.getsize(partial)),
                                        indent=1).encode("ascii")
            write_atomic(layout.snapshot_manifest(instance.id, name), manifest_bytes)
            final = layout.snapshot_archive(instance.id, name)
            os.rename(partial, final)
            fsync_directory(directory)
        finally:
            for leftover in (partial, database_temp):
                if os.path.lexists(leftover):
                    os.unlink(leftover)
    return final, manifest


def remove_partials(directory):
    for entry in os.scandir(directory):
        if entry.name.startswith(".") and entry.name.endswith(_PARTIAL_SUFFIXES):
            os.unlink(entry.path)


def _write_archive(partial, database_temp, instance, head, include_output, progress):
    entries, skipped = collect.walk(instance, include_output)
    database_info = collect.database_copy(instance, database_temp)
    extra = {"skipped": skipped}
    with open(partial, "xb") as file:
        write_back = _WriteBack(file)
        try:
            manifest = _fill(write_back, entries, database_info, database_temp, instance, dict(head, **extra), progress)
        finally:
            write_back.close()
        file.flush()
        os.fsync(file.fileno())
    return manifest


def _fill(file, entries, database_info, database_temp, instance, head, progress):
    """Every entry, the database copy, and the manifest last, into `file` through the compressor."""
    counts, records = {"files": 0, "bytes": 0}, []
    with ArchiveWriter(file) as tar:
        for relative, path, info in entries:
            record = _add(tar, relative, path, info)
            if record is not None:
                records.append(record)
                _count(counts, record, progress)
        if database_info is not None:
            record = _add_file(tar, os.path.relpath(instance.database, instance.root), database_temp)
            records.append(dict(record, database_copy="sqlite-backup"))
            _count(counts, record, progress)
        manifest = dict(head, entries=records, totals=counts)
        _add_manifest(tar, manifest)
    return manifest


def _count(counts, record, progress):
    if record["type"] == "file":
        counts["files"] += 1
        counts["bytes"] += record["size"]
        if progress is not None:
            progress(counts["files"], counts["bytes"])


def _tarinfo(relative, info, kind):
    member = tarfile.TarInfo(relative)
    member.type = kind
    # setuid/setgid never travel: a restore refuses them (they would run as the file's owner).
    member.mode = stat.S_IMODE(info.st_mode) & ~0o6000
    # Whole seconds in the tar header: a fractional mtime costs every member a pax header of its
    # own (twice the headers to write and parse). The manifest keeps the exact time, and a restore
    # sets it from there.
    member.mtime = int(info.st_mtime)
    member.uid, member.gid = info.st_uid, info.st_gid
    return member


def _record(member, info, **more):
    kind = {tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink"}.get(member.type, "file")
    record = {"path": member.name, "type": kind, "mode": member.mode, "mtime": info.st_mtime_ns / 1e9}
    if kind == "symlink":
        record["target"] = member.linkname
    record.update(more)
    return record


def _add(tar, relative, path, info):
    if stat.S_ISDIR(info.st_mode):
        member = _tarinfo(relative, info, tarfile.DIRTYPE)
        tar.addfile(member)
        return _record(member, info)
    if stat.S_ISLNK(info.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            return None  # gone or replaced since the walk
        member = _tarinfo(relative, info, tarfile.SYMTYPE)
        member.linkname = target
        tar.addfile(member)
        return _record(member, info)
    return _add_file(tar, relative, path)


def _add_file(tar, relative, path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None  # gone, or replaced by a link, since the walk
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        member = _tarinfo(relative, info, tarfile.REGTYPE)
        member.size = info.st_size
        reader = _HashingReader(fd, info.st_size)
        tar.addfile(member, reader)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    record = _record(member, info, size=member.size, blake3=reader.hash.hexdigest())
    if reader.short or after.st_size != info.st_size or after.st_mtime_ns != info.st_mtime_ns:
        record["changed_while_read"] = True
    return record


def _add_manifest(tar, manifest):
    import io
    import time

    data = json.dumps(manifest, indent=1).encode("ascii")  # names that are not UTF-8 stay \udcxx escapes
    member = tarfile.TarInfo(MANIFEST_MEMBER)
    member.size, member.mode, member.mtime = len(data), 0o644, int(time.time())
    tar.addfile(member, io.BytesIO(data))

