"""Reading a snapshot once: every member checked before anything of it is written, every file
hashed, and at the end the manifest compared with what was read.

A member is refused (65, `unsafe-member`) when its name is absolute, holds `..` or an empty part,
lies outside custom_nodes/, user/ and output/, comes twice, or sits in a folder the archive did
not create as a directory (so nothing is ever written through a link); when it is a device,
FIFO or any type but file, directory, symbolic and hard link; when it carries setuid or setgid
bits; when it is a hard link to anything but a file earlier in the archive; and when it is a
symbolic link that is absolute or leads out of the instance. The last check runs at the end over
all links together, resolving each through the others, since a link defined later can make an
earlier one lead out (`a -> l/..` with `l -> ../user`).

A truncated or corrupt archive, a missing manifest, or members that disagree with it are
`snapshot-damaged` (65). `scan` raises before returning, so a caller that wrote members (restore,
into a staging directory) throws them away.
"""

import json
import posixpath

from comfy_init.errors import DataError, IOFailure
from comfy_init.ops.snapshot.archive import (
    CHUNK, FORMAT, FORMAT_VERSION, MANIFEST_MEMBER, TOP_FOLDERS, Reader, hasher, read_errors)
from comfy_init.problems import Problem

_LINK_DEPTH = 40


def damaged(path, message, details=()):
    return DataError(Problem("snapshot-damaged", message, path=path, details=details[:20],
                             fix="use another snapshot (`comfy-init snapshot list`); this one cannot be trusted"))


def unsafe(path, member_name, what):
    return DataError(Problem("unsafe-member", f"member {member_name!r} {what}: the archive is refused", path=path,
                             fix="nothing was written; restore only archives comfy-init made, from a trusted place"))


class _State:
    def __init__(self, path):
        self.path = path
        self.records = {}
        self.links = {}
        self.manifest = None
        self.files = 0
        self.bytes = 0


def scan(path, sink=None, progress=None):
    """Read the archive at `path` once, writing its members through `sink` (or nowhere); return
    its manifest when every member is safe and agrees with it."""
    state = _State(path)
    try:
        reader = Reader(path)
    except FileNotFoundError:
        raise damaged(path, "is gone") from None
    except read_errors() as exc:
        raise damaged(path, f"is not a snapshot archive ({exc})") from None
    try:
        for member in reader.tar:
            _one(reader.tar, member, state, sink, progress)
    except read_errors() as exc:
        raise damaged(path, f"cannot be read to the end: {exc or type(exc).__name__}") from None
    except OSError as exc:
        raise IOFailure(Problem("io-error", f"reading or extracting failed: {exc}", path=path)) from None
    finally:
        reader.close()
    if state.manifest is None:
        raise damaged(path, "has no manifest at its end: it is truncated, or not a comfy-init snapshot")
    _check_links(state)
    _compare(state)
    return state.manifest


def _one(tar, member, state, sink, progress):
    if state.manifest is not None:
        raise damaged(state.path, f"has member {member.name!r} after its manifest")
    if member.name == MANIFEST_MEMBER and member.isreg():
        state.manifest = _read_manifest(state.path, tar.extractfile(member).read())
        return
    _check(member, state)
    record = _consume(tar, member, state, sink)
    state.records[member.name] = record
    if record["type"] == "symlink":
        state.links[member.name] = record["target"]
    elif record["type"] == "file":
        state.files += 1
        state.bytes += record["size"]
        if progress is not None:
            progress(state.files, state.bytes)


def _read_manifest(path, data):
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise damaged(path, f"has a manifest that does not parse: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("entries"), list):
        raise damaged(path, "has a manifest that is not a comfy-init snapshot manifest")
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > FORMAT_VERSION:
        raise damaged(path, f"was written by a newer comfy-init (format {manifest.get('format_version')!r})")
    return manifest


def _check(member, state):
    name, path = member.name, state.path
    parts = name.split("/")
    if not name or name.startswith("/") or "\x00" in name:
        raise unsafe(path, name, "has an absolute name")
    if ".." in parts:
        raise unsafe(path, name, "has '..' in its name")
    if "" in parts or "." in parts or parts[0] not in TOP_FOLDERS:
        raise unsafe(path, name, f"is not under {', '.join(f + '/' for f in TOP_FOLDERS)}")
    if name in state.records:
        raise unsafe(path, name, "comes twice")
    parent = posixpath.dirname(name)
    if parent and state.records.get(parent, {}).get("type") != "dir":
        raise unsafe(path, name, "is not in a directory the archive made (a link, or out of order)")
    _check_kind(member, state)
    if member.mode & 0o6000:
        raise unsafe(path, name, "carries setuid or setgid bits")


def _check_kind(member, state):
    name, path = member.name, state.path
    if member.ischr() or member.isblk():
        raise unsafe(path, name, "is a device")
    if member.isfifo():
        raise unsafe(path, name, "is a FIFO")
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise unsafe(path, name, f"is of a type a restore never writes ({member.type!r}: a socket?)")
    if member.issym():
        target = member.linkname
        if not target or target.startswith("/") or "\x00" in target:
            raise unsafe(path, name, f"is a link to an absolute path ({target!r})")
        if _leaves_root(posixpath.dirname(name), target, {}):
            raise unsafe(path, name, f"is a link pointing out of the instance ({target!r})")
    if member.islnk() and state.records.get(member.linkname, {}).get("type") != "file":
        raise unsafe(path, name, f"is a hard link to something outside the archive ({member.linkname!r})")


def _leaves_root(start, target, links):
    """Whether `target`, followed from the folder `start` (relative to the instance) through the
    archive's `links`, ever climbs above the instance directory (or loops)."""
    current = [part for part in start.split("/") if part]
    todo = target.split("/")
    expansions = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not current:
                return True
            current.pop()
            continue
        current.append(part)
        inner = links.get("/".join(current))
        if inner is not None:
            expansions += 1
            if expansions > _LINK_DEPTH or inner.startswith("/"):
                return True
            current.pop()
            todo = inner.split("/") + todo
    return False


def _check_links(state):
    for name, target in state.links.items():
        if _leaves_root(posixpath.dirname(name), target, state.links):
            raise unsafe(state.path, name, f"is a link leading out of the instance through other links ({target!r})")


def _consume(tar, member, state, sink):
    mode = member.mode & 0o7777
    if member.isdir():
        if sink is not None:
            sink.directory(member)
        return {"type": "dir", "mode": mode}
    if member.issym():
        if sink is not None:
            sink.symlink(member)
        return {"type": "symlink", "target": member.linkname}
    if member.islnk():
        if sink is not None:
            sink.hardlink(member)
        return dict(state.records[member.linkname])
    digest = hasher()
    out = sink.file(member) if sink is not None else None
    try:
        for chunk in _data(tar, member):
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
    return {"type": "file", "mode": mode, "size": member.size, "blake3": digest.hexdigest()}


def _data(tar, member):
    """A regular member's bytes, read straight from the archive's stream (tarfile's own file
    object would copy each chunk twice more); tarfile seeks on past the padding afterwards."""
    stream = tar.fileobj
    read = getattr(stream, "read_view", stream.read)
    stream.seek(member.offset_data)
    left = member.size
    while left:
        chunk = read(min(CHUNK, left))
        if not len(chunk):
            raise EOFError(f"the archive ends inside member {member.name!r}")
        left -= len(chunk)
        yield chunk


_COMPARED = {"dir": ("mode",), "symlink": ("target",), "file": ("mode", "size", "blake3")}


def _compare(state):
    expected = {}
    for entry in state.manifest["entries"]:
        if not isinstance(entry, dict) or entry.get("type") not in _COMPARED or not isinstance(entry.get("path"), str):
            raise damaged(state.path, f"has a manifest entry that is not one: {entry!r}")
        expected[entry["path"]] = entry
    wrong = [f"missing from the archive: {name}" for name in sorted(set(expected) - set(state.records))]
    wrong += [f"not in the manifest: {name}" for name in sorted(set(state.records) - set(expected))]
    for name in sorted(set(expected) & set(state.records)):
        entry, record = expected[name], state.records[name]
        keys = ("type",) + _COMPARED.get(record["type"], ())
        differ = [key for key in keys if entry.get(key) != record.get(key)]
        if differ:
            wrong.append(f"{name}: {', '.join(differ)} differ from the manifest")
    if wrong:
        raise damaged(state.path, f"disagrees with its manifest ({len(wrong)} differences)", wrong)


def counts(manifest):
    files = [e for e in manifest["entries"] if e.get("type") == "file"]
    return {"entries": len(manifest["entries"]), "files": len(files), "bytes": sum(e.get("size", 0) for e in files)}

