"""Finding, listing, pruning and deleting snapshots under meta/backup-snapshots/<id>/.

A snapshot is named `<UTC>-<short id>` (its archive `<name>.tar.zst`, its manifest copy
`<name>.manifest.json`). SNAPSHOT arguments are a path to an archive, `ID/NAME`, a NAME alone
(searched in every instance's folder), or, where `latest_ok`, an instance id for its newest one.
Dot names (partial files, the lock) are never snapshots.
"""

import json
import os

from comfy_init.errors import MissingPathError
from comfy_init.layout import INSTANCE_ID_PATTERN, MANIFEST_SUFFIX, SNAPSHOT_SUFFIXES
from comfy_init.problems import Problem
from comfy_init.store.files import read_regular


class Snapshot:
    __slots__ = ("instance_id", "name", "archive", "manifest_path")

    def __init__(self, instance_id, name, archive, manifest_path):
        self.instance_id = instance_id
        self.name = name
        self.archive = archive
        self.manifest_path = manifest_path

    def beside_manifest(self):
        """The manifest copy beside the archive (None when absent or unreadable): for listing
        only; verify and restore trust the one inside the archive."""
        try:
            data = read_regular(self.manifest_path) if self.manifest_path else None
            return json.loads(data) if data else None
        except (ValueError, OSError, Exception):  # noqa: BLE001 (a damaged copy is only not shown)
            return None


def _split_name(filename):
    for suffix in SNAPSHOT_SUFFIXES:
        if filename.endswith(suffix) and not filename.startswith("."):
            return filename[: -len(suffix)]
    return None


def snapshots_of(layout, instance_id):
    """The snapshots of one instance, oldest first."""
    directory = layout.snapshot_dir(instance_id)
    try:
        entries = [entry for entry in os.scandir(directory) if entry.is_file(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        name = _split_name(entry.name)
        if name is not None:
            found.append((name[:16], entry.stat(follow_symlinks=False).st_mtime_ns, name, entry.path))
    return [Snapshot(instance_id, name, path, layout.snapshot_manifest(instance_id, name))
            for _stamp, _mtime, name, path in sorted(found)]


def instance_ids(layout):
    try:
        names = os.listdir(layout.snapshots)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(name for name in names if INSTANCE_ID_PATTERN.match(name)
                  and os.path.isdir(os.path.join(layout.snapshots, name)))


def unknown(reference, layout):
    return MissingPathError(Problem("unknown-snapshot", f"no snapshot {reference!r} in {layout.snapshots}",
                                    fix="`comfy-init snapshot list` shows them (NAME, ID/NAME, or a path to an archive)"))


def find(layout, reference, *, latest_ok=False):
    """The Snapshot a SNAPSHOT argument names; MissingPathError (66) when none does."""
    if _split_name(os.path.basename(reference)) and os.path.isfile(reference):
        path = os.path.abspath(reference)
        name = _split_name(os.path.basename(path))
        directory = os.path.dirname(path)
        return Snapshot(os.path.basename(directory), name, path, os.path.join(directory, name + MANIFEST_SUFFIX))
    instance_id, _, name = reference.rpartition("/")
    candidates = [instance_id] if instance_id else instance_ids(layout)
    for candidate in candidates:
        for snapshot in snapshots_of(layout, candidate):
            if name in (snapshot.name, os.path.basename(snapshot.archive)):
                return snapshot
    if latest_ok and not instance_id and INSTANCE_ID_PATTERN.match(reference):
        newest = snapshots_of(layout, reference)
        if newest:
            return newest[-1]
    raise unknown(reference, layout)


def summary(snapshot):
    """One row of `snapshot list`."""
    manifest = snapshot.beside_manifest() or {}
    totals = manifest.get("totals") or {}
    return {"instance": snapshot.instance_id, "name": snapshot.name, "archive": snapshot.archive,
            "archive_bytes": os.path.getsize(snapshot.archive) if os.path.exists(snapshot.archive) else None,
            "created_at": manifest.get("created_at"), "kind": manifest.get("kind"), "note": manifest.get("note"),
            "live": manifest.get("live"), "files": totals.get("files"), "bytes": totals.get("bytes"),
            "include_output": manifest.get("include_output")}


def remove(snapshot):
    """Delete the archive, then its manifest copy (a manifest without its archive is never listed)."""
    os.unlink(snapshot.archive)
    if snapshot.manifest_path and os.path.lexists(snapshot.manifest_path):
        os.unlink(snapshot.manifest_path)
