"""The instance registry, meta/instance-registry.json: configured instances and live claims.

Every comfy-init sharing a data tree reads and writes this one file, so:

- readers take no lock: the file is only ever replaced by an atomic rename, so any read sees one
  complete version (`Registry.load`);
- writers take `instance-registry.json.lock` (flock), read the file again under it, change it, and
  replace it atomically, keeping the version they replaced as `instance-registry.json.bak`
  (`Registry.transaction`); `revision` grows by one on every write and never goes backwards;
- a file that does not parse or fails the schema stops everything with DataError (exit 65) and is
  never touched, until the user asks for `Registry.recover` through COMFY_REGISTRY_RECOVER.

A writer killed in the middle of a write can leave `.instance-registry.json.tmp-<pid>-<random>` (or
`.instance-registry.json.bak.tmp-...`) behind. Such files are harmless, nothing reads them, and the
next transaction removes them all (under the lock, no live writer can own one).

jsonschema is imported on the first validation, not with this module: `comfy-init run` imports
this module on its start-up path, before it needs to read a registry.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from .atomicfile import clean_stale_temps, lock_file, write_atomic
from .config import RECOVERY_MODES
from .errors import CannotCreateError, ConfigError, DataError, IOFailure

REGISTRY_NAME = "instance-registry.json"
SCHEMA_VERSION = 1
RECOVER_VARIABLE = "COMFY_REGISTRY_RECOVER"

_SCHEMA_RESOURCE = "registry.schema.json"
_MESSAGE_LIMIT = 300
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")

_validator_cache = None


def empty_document() -> dict:
    """A registry with no instances and no claims, at revision 0 (never written)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "revision": 0,
        "updated_at": _utc_now(),
        "instances": {},
        "claims": {},
    }


class Registry:
    """meta/instance-registry.json of one data tree, with its lock and backup beside it."""

    def __init__(self, meta_dir: str | os.PathLike, *, lock_timeout: float = 10.0):
        self.meta_dir = os.fspath(meta_dir)
        self.path = os.path.join(self.meta_dir, REGISTRY_NAME)
        self.lock_path = self.path + ".lock"
        self.backup_path = self.path + ".bak"
        self.lock_timeout = lock_timeout
        # A private copy of the last document this object found valid: entries equal to its
        # entries need no second schema check (jsonschema costs ~30 us an entry).
        self._known: dict | None = None

    def __repr__(self) -> str:
        return f"Registry({self.meta_dir!r})"

    def load(self) -> dict:
        """The current document, validated; a fresh empty one if there is no file. Takes no lock
        and creates nothing."""
        data = _read_bytes(self.path)
        if data is None:
            return empty_document()
        return self._decode_or_raise(data)[0]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict]:
        """Read-modify-write under the lock: yields the current document to change in place.

        On a normal exit a changed document is written with revision + 1 and a new updated_at,
        and the replaced file is kept as the .bak; an unchanged one is not written; an exception
        writes nothing. The lock is held for the whole block: keep it short.
        """
        self._make_meta_dir()
        with lock_file(self.lock_path, self.lock_timeout):
            data = _read_bytes(self.path)
            if data is None:
                document = empty_document()
                before = copy.deepcopy(document)
            else:
                document, before = self._decode_or_raise(data)
            yield document
            if _same_content(before, document):
                return
            document["revision"] = int(before["revision"]) + 1
            document["updated_at"] = _utc_now()
            new_data = self._serialize_or_raise(document, known=before)
            self._clean_temps()
            write_atomic(self.path, new_data, backup=None if data is None else self.backup_path)

    def recover(self, mode: str) -> str:
        """Replace a damaged registry, as COMFY_REGISTRY_RECOVER asks; return what was done.

        "backup" restores the .bak (which must be valid), "reset" starts an empty registry. The
        damaged file is first kept as instance-registry.json.corrupt-<UTC time>. The new revision
        is above the damaged file's (if it can still be read) and the .bak's + 1. A registry
        that is missing or valid is left alone, so a COMFY_REGISTRY_RECOVER left set does no harm.
        """
        if mode not in RECOVERY_MODES:
            raise ConfigError(f"{RECOVER_VARIABLE}={mode!r}: must be 'backup' or 'reset'")
        if not os.path.lexists(self.path):
            return f"{self.path} does not exist: nothing to recover ({RECOVER_VARIABLE}={mode} ignored)"
        with lock_file(self.lock_path, self.lock_timeout):
            data = _read_bytes(self.path)
            if data is None:
                return f"{self.path} does not exist: nothing to recover ({RECOVER_VARIABLE}={mode} ignored)"
            try:
                current = _decode(data)
            except _Invalid as bad:
                if bad.newer is not None:
                    raise DataError(
                        *self._newer_lines(bad.newer),
                        f"{RECOVER_VARIABLE}={mode} refused: the file is not damaged, only newer",
                    ) from None
            else:
                return (
                    f"{self.path} is valid (revision {current['revision']}): nothing to recover;"
                    f" unset {RECOVER_VARIABLE}"
                )

            # The damaged file was most likely written after the .bak, as revision .bak + 1; it
            # may say more. The new file gets a revision above all of these.
            backup = _read_bytes(self.backup_path)
            revision = max(0, _salvage_revision(data))
            if backup is not None:
                revision = max(revision, _salvage_revision(backup) + 1)
            if mode == "backup":
                document = self._valid_backup_or_raise()
                restored_from = document["revision"]
            else:
                document = empty_document()
            document["revision"] = revision + 1
            document["updated_at"] = _utc_now()
            new_data = self._serialize_or_raise(document)
            kept = self._keep_corrupt(data)
            self._clean_temps()
            write_atomic(self.path, new_data)

        kept_name = os.path.basename(kept)
        if mode == "backup":
            return (
                f"restored {self.path} from {REGISTRY_NAME}.bak (revision {restored_from}), written as"
                f" revision {document['revision']}; the bad file is kept as {kept_name}"
            )
        return (
            f"reset {self.path} to an empty registry (revision {document['revision']});"
            f" the bad file is kept as {kept_name}"
        )

    # -- reading ------------------------------------------------------------------------------

    def _decode_or_raise(self, data: bytes) -> tuple[dict, dict]:
        """The valid document in `data`, and a private copy of it that nobody else sees."""
        try:
            document = _decode(data, self._known)
        except _Invalid as bad:
            if bad.newer is not None:
                raise DataError(*self._newer_lines(bad.newer)) from None
            raise DataError(f"{self.path}: {bad.summary}", *bad.details, self._fix_line()) from None
        private = json.loads(data)  # parsing again is cheaper than copy.deepcopy
        self._known = private
        return document, private

    def _newer_lines(self, version: Any) -> list[str]:
        from . import __version__

        return [
            f"{self.path}: written by a newer comfy-init (schema_version {version}); this comfy-init"
            f" ({__version__}) reads schema_version {SCHEMA_VERSION} only",
            "upgrade comfy-init (the image) everywhere this data directory is used; the file is"
            f" fine: do not set {RECOVER_VARIABLE}",
        ]

    def _fix_line(self) -> str:
        kept = f"the bad file is kept as {REGISTRY_NAME}.corrupt-<time>"
        backup_name = REGISTRY_NAME + ".bak"
        backup_state = self._backup_state()
        if isinstance(backup_state, int):
            return (
                f"fix: set {RECOVER_VARIABLE}=backup to restore {backup_name} (revision {backup_state})"
                f" or =reset to start an empty registry; {kept}"
            )
        return f"fix: set {RECOVER_VARIABLE}=reset to start an empty registry ({backup_name} {backup_state}); {kept}"

    def _backup_state(self) -> int | str:
        """The .bak's revision if it is usable, else why not."""
        try:
            data = _read_bytes(self.backup_path)
        except IOFailure:
            return "cannot be read"
        if data is None:
            return "does not exist"
        try:
            return int(_decode(data)["revision"])
        except _Invalid as bad:
            if bad.newer is not None:
                return "is from a newer comfy-init"
            return "is damaged too"

    def _valid_backup_or_raise(self) -> dict:
        backup_name = REGISTRY_NAME + ".bak"
        reset = f"set {RECOVER_VARIABLE}=reset instead to start an empty registry"
        data = _read_bytes(self.backup_path)
        if data is None:
            raise DataError(f"{self.backup_path}: cannot restore from {backup_name}: it does not exist", reset)
        try:
            return _decode(data)
        except _Invalid as bad:
            if bad.newer is not None:
                raise DataError(*self._newer_lines(bad.newer)) from None
            raise DataError(
                f"{self.backup_path}: cannot restore from {backup_name}: it {bad.summary}", *bad.details, reset
            ) from None

    # -- writing ------------------------------------------------------------------------------

    def _make_meta_dir(self) -> None:
        try:
            os.makedirs(self.meta_dir, exist_ok=True)
        except OSError as exc:
            raise CannotCreateError(
                f"{self.meta_dir}: cannot create the directory: {os.strerror(exc.errno) if exc.errno else exc}"
            ) from exc

    def _serialize_or_raise(self, document: Any, known: dict | None = None) -> bytes:
        refused = f"{self.path}: comfy-init refused to write a registry that breaks its schema:"
        bug = "nothing was written; this is a bug in comfy-init: please report these lines"
        problems = _problems(document, known)
        if problems:
            raise DataError(refused, *("  " + p for p in problems), bug)
        try:
            return (json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        except ValueError as exc:  # NaN or infinity
            raise DataError(refused, f"  {exc}", bug) from None

    def _clean_temps(self) -> None:
        clean_stale_temps(self.path)
        clean_stale_temps(self.backup_path)

    def _keep_corrupt(self, data: bytes) -> str:
        """Keep the damaged file, byte for byte, under a new name; never overwrite anything."""
        base = os.path.join(self.meta_dir, f"{REGISTRY_NAME}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', _utc())}")
        for attempt in range(1000):
            name = base if attempt == 0 else f"{base}-{attempt}"
            try:
                _link_or_copy(self.path, name, data)
            except FileExistsError:
                continue
            except OSError as exc:
                raise IOFailure(
                    f"{name}: cannot keep the damaged registry: {os.strerror(exc.errno) if exc.errno else exc}",
                    "nothing was changed",
                ) from exc
            return name
        raise IOFailure(f"{base}: too many files of this name; move old ones away", "nothing was changed")


class _Invalid(Exception):
    """Why some bytes are not a registry: a summary line, detail lines, or a newer schema_version."""

    def __init__(self, summary: str = "", details: list[str] | None = None, *, newer: Any = None):
        super().__init__(summary)
        self.summary = summary
        self.details = details or []
        self.newer = newer


class _DuplicateKey(ValueError):
    pass


def _decode(data: bytes, known: dict | None = None) -> dict:
    """Parse and validate registry bytes; raise _Invalid saying what is wrong.

    Entries equal to those of `known`, a document already found valid, are not checked again.
    """
    if not data.strip():
        raise _Invalid("is empty" if not data else "holds nothing but white space")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Invalid(f"is not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        document = json.loads(text, object_pairs_hook=_object_without_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        truncated = "; the file ends early: it was probably truncated" if exc.pos >= len(text.rstrip()) else ""
        raise _Invalid(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{truncated}") from None
    except _DuplicateKey as exc:
        raise _Invalid(f"is not valid: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise _Invalid(f"is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise _Invalid(f"is not a registry: its top level is a JSON {_json_type(document)}, not an object")
    version = document.get("schema_version")
    if isinstance(version, (int, float)) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise _Invalid(newer=version)
    problems = _problems(document, known)
    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        raise _Invalid(f"does not match the registry schema ({count}):", ["  " + p for p in problems])
    return document


def schema_problems(document: Any) -> list[str]:
    """Every schema violation of `document`, one line each, as `<JSON path>: <what is wrong>`."""
    return _problems(document, None)


def _problems(document: Any, known: dict | None) -> list[str]:
    """schema_problems, skipping the entries of instances and claims that are exactly as in
    `known`, a document already found valid: each entry's validity depends on itself alone."""
    subject = document
    if known is not None and isinstance(document, dict):
        subject = dict(document)
        for section in ("instances", "claims"):
            entries, checked = document.get(section), known.get(section)
            if isinstance(entries, dict) and isinstance(checked, dict):
                subject[section] = {
                    key: value for key, value in entries.items()
                    if key not in checked or not _same_json(value, checked[key])
                }
    found = []
    for error in _validator().iter_errors(subject):
        path = _json_path(error.absolute_path)
        if "propertyNames" in error.absolute_schema_path:
            message = (
                f"key {error.instance!r} is not a valid instance id (a DNS label: a-z, 0-9 and '-',"
                " 1 to 63 characters, starting and ending with a letter or digit)"
            )
        else:
            message = error.message
        if len(message) > _MESSAGE_LIMIT:
            message = message[: _MESSAGE_LIMIT - 3] + "..."
        found.append(([str(part) for part in error.absolute_path], f"{path}: {message}"))
    found.sort()
    return [line for _, line in found]


def _validator():
    """The compiled schema validator, built (and jsonschema imported) on first use."""
    global _validator_cache
    if _validator_cache is None:
        from importlib import resources

        import jsonschema

        schema_text = resources.files(__package__).joinpath(_SCHEMA_RESOURCE).read_text(encoding="utf-8")
        _validator_cache = jsonschema.Draft202012Validator(json.loads(schema_text))
    return _validator_cache


def _json_path(parts) -> str:
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            path += "." + part
        else:
            path += "[" + json.dumps(part, ensure_ascii=False) + "]"
    return path


def _same_json(a: Any, b: Any) -> bool:
    """Equality that also tells true from 1 and 1.0 from 1, as a schema does."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same_json(value, b[key]) for key, value in a.items())
    if type(a) is list:
        return len(a) == len(b) and all(map(_same_json, a, b))
    return a == b


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    result = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _salvage_revision(data: bytes) -> int:
    """The revision recorded in possibly damaged registry bytes, or -1 when none can be read."""
    try:
        revision = json.loads(data.decode("utf-8")).get("revision")
    except (ValueError, AttributeError, RecursionError):
        return -1
    if isinstance(revision, (int, float)) and not isinstance(revision, bool) and 0 <= revision < 2**63:
        return int(revision)
    return -1


def _same_content(before: dict, after: Any) -> bool:
    """Whether the caller changed anything but the fields the transaction itself maintains."""
    if not isinstance(after, dict):
        return False
    own = ("revision", "updated_at")
    return _same_json({k: v for k, v in before.items() if k not in own},
                      {k: v for k, v in after.items() if k not in own})


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IOFailure(f"{path}: cannot read: {os.strerror(exc.errno) if exc.errno else exc}") from exc


def _link_or_copy(source: str, target: str, data: bytes) -> None:
    """Make `target` hold `data` (the bytes of `source`) without replacing an existing `target`."""
    try:
        os.link(source, target)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # no hard links here (another mount, such a file system): copy the bytes read
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise
    os.close(fd)


def _utc() -> time.struct_time:
    return time.gmtime()


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", _utc())
