"""The instance registry, meta/instance-registry.json: configured instances and live claims.

Every comfy-init sharing a data tree reads and writes this one file, so:

- readers take no lock: the file is only ever replaced by an atomic rename, so any read sees one
  complete version (`Registry.load`);
- writers take `instance-registry.json.lock` (flock) and then `instance-registry.json.xlock` (an
  owner file only one writer can create, for shares whose flock does not reach across mounts:
  comfy_init.store.sharelock), read the file again under them, change it, and replace it
  atomically, keeping the version they replaced as `instance-registry.json.bak`
  (`Registry.transaction`); `revision` grows by one on every write and never goes backwards;
- a file that does not parse or fails the schema stops everything with RegistryDamaged (exit 65)
  and is never touched, until the user asks for `Registry.recover`.

The store knows no environment: how the user asks for a recovery (a variable at start, a CLI
command) is the caller's to say, through `RegistryDamaged.advise`.

Validation: every read is checked against registry.schema.json. The yes/no answer comes from
comfy_init.store.schema (no jsonschema import: this runs on every container start); jsonschema
is imported only to say what is wrong with a document that fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from comfy_init.errors import CannotCreateError, DataError, IOFailure, UsageError
from comfy_init.layout import REGISTRY_NAME
from comfy_init.problems import Problem
from comfy_init.store import sharelock
from comfy_init.store.clock import utc_now, utc_stamp
from comfy_init.store.files import (
    clean_stale_temps, io_failure, keep_copy_as_new_name, read_regular, refuse_non_regular, unused_name,
    write_atomic)

SCHEMA_VERSION = 2
# A registry read that does not parse and differs from the next read is read again, up to this
# many times, the later ones 10 ms, 40 ms, ... apart.
READ_RETRIES, READ_RETRY_FIRST = 5, 0.01
RECOVERY_MODES = ("backup", "reset")

_SCHEMA_RESOURCE = "registry.schema.json"
_MESSAGE_LIMIT = 300
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")

_schema_cache = None
_fast_cache = None
_validator_cache = None


def empty_document() -> dict:
    """A registry with no instances and no claims, at revision 0 (never written)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "revision": 0,
        "updated_at": utc_now(),
        "instances": {},
        "claims": {},
    }


class RegistryDamaged(DataError):
    """The registry does not parse or fails its schema. Carries what a caller needs to advise:
    the path, what is wrong, and the state of the .bak (its revision, or why it is unusable)."""

    def __init__(self, path, summary, details, backup_state, how_to_recover=None):
        self.path = path
        self.summary = summary
        self.details = list(details)
        self.backup_state = backup_state
        super().__init__(Problem("registry-damaged", summary, path=path, details=self.details,
                                 fix=self._fix(how_to_recover or _neutral_recovery)))

    def advise(self, how_to_recover):
        """The same error, its fix naming the caller's way to recover: `how_to_recover(mode)` is
        e.g. "set COMFY_REGISTRY_RECOVER=backup" or "run `comfy-init registry recover backup`"."""
        return RegistryDamaged(self.path, self.summary, self.details, self.backup_state, how_to_recover)

    def _fix(self, how):
        kept = f"the bad file is kept as {REGISTRY_NAME}.corrupt-<time>"
        if isinstance(self.backup_state, int):
            return (f"{how('backup')} to restore {REGISTRY_NAME}.bak (revision {self.backup_state}), "
                    f"or {how('reset')} to start an empty registry; {kept}")
        return f"{how('reset')} to start an empty registry ({REGISTRY_NAME}.bak {self.backup_state}); {kept}"


class RegistryNewer(DataError):
    """The registry was written by a newer comfy-init (a larger schema_version)."""

    def __init__(self, path, version):
        from comfy_init import __version__

        self.path = path
        self.version = version
        super().__init__(Problem(
            "registry-newer",
            f"written by a newer comfy-init (schema_version {version}); this comfy-init "
            f"({__version__}) reads schema_version {SCHEMA_VERSION} only", path=path,
            fix="upgrade comfy-init (the image) everywhere this data directory is used; the file is "
                "fine: do not recover it"))


def _neutral_recovery(mode):
    return f"recover it with mode {mode!r}"


class Registry:
    """meta/instance-registry.json of one data tree (a comfy_init.layout.Layout), with its lock and
    backup beside it."""

    def __init__(self, layout, *, lock_timeout: float = 10.0):
        self.layout = layout
        self.meta_dir = layout.meta
        self.path = layout.registry
        self.lock_path = self.path + ".lock"
        self.owner_path = self.path + ".xlock"
        self.backup_path = self.path + ".bak"
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"Registry({self.meta_dir!r})"

    def load(self) -> dict:
        """The current document, validated; a fresh empty one if there is no file. Takes no lock
        and creates nothing."""
        return self._read()[1]

    def check(self) -> dict:
        """`load()`, and refuse a lock sidecar that is not a regular file: everything a write would
        trip over, found before the caller creates anything."""
        document = self.load()
        refuse_non_regular(self.lock_path)
        refuse_non_regular(self.owner_path)
        return document

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict]:
        """Read-modify-write under the lock: yields the current document to change in place.

        On a normal exit a changed document is written with revision + 1 and a new updated_at,
        and the replaced file is kept as the .bak; an unchanged one is not written; an exception
        writes nothing. The lock is held for the whole block: keep it short.
        """
        self._make_meta_dir()
        with self._locked() as tag:
            data, document = self._read()
            before = json.loads(json.dumps(document))
            yield document
            if _same_content(before, document):
                return
            document["revision"] = int(before["revision"]) + 1
            document["updated_at"] = utc_now()
            new_data = self._serialize_or_raise(document)
            self._clean_temps(tag)
            write_atomic(self.path, new_data, backup=None if data is None else self.backup_path, tag=tag)

    def recover(self, mode: str) -> str:
        """Replace a damaged registry: "backup" restores the .bak (which must be valid), "reset"
        starts an empty registry; return what was done.

        The damaged file is first kept as instance-registry.json.corrupt-<UTC time> (a link or
        FIFO standing there is renamed as it is: never read or followed). The new revision is above
        the damaged file's (if it can still be read) and the .bak's + 1. A registry that is missing
        or valid is left alone, so asking twice does no harm.
        """
        if mode not in RECOVERY_MODES:
            raise UsageError(Problem("usage", f"unknown recovery mode {mode!r}", fix="use 'backup' or 'reset'"))
        if not os.path.lexists(self.path):
            return f"{self.path} does not exist: nothing to recover"
        with self._locked() as tag:
            if not os.path.lexists(self.path):
                return f"{self.path} does not exist: nothing to recover"
            try:
                data = read_regular(self.path)
                if data is None:
                    return f"{self.path} does not exist: nothing to recover"
                current = _decode(data)
            except DataError as refused:
                if refused.problems[0].kind != "not-a-regular-file":
                    raise
                data = b""  # not a file at all: nothing to read, only to move aside
            except _Invalid as bad:
                if bad.newer is not None:
                    raise RegistryNewer(self.path, bad.newer) from None
            else:
                return f"{self.path} is valid (revision {current['revision']}): nothing to recover"

            revision = self._revision_above(data, mode)
            if mode == "backup":
                document = self._valid_backup_or_raise()
                restored_from = document["revision"]
            else:
                document = empty_document()
            document["revision"] = revision + 1
            document["updated_at"] = utc_now()
            new_data = self._serialize_or_raise(document)
            kept = self._keep_corrupt(data)
            self._clean_temps(tag)
            write_atomic(self.path, new_data, tag=tag)

        kept_name = os.path.basename(kept)
        if mode == "backup":
            return (f"restored {self.path} from {REGISTRY_NAME}.bak (revision {restored_from}), written as"
                    f" revision {document['revision']}; the bad file is kept as {kept_name}")
        return (f"reset {self.path} to an empty registry (revision {document['revision']});"
                f" the bad file is kept as {kept_name}")

    def _revision_above(self, data, mode):
        """The highest revision a recovery must go above. The damaged file was most likely written
        after the .bak, as revision .bak + 1; it may say more."""
        try:
            backup = read_regular(self.backup_path)
        except (DataError, IOFailure):
            if mode == "backup":
                raise
            backup = None  # a reset needs no .bak: a broken one only gives no revision to go above
        revision = max(0, _salvage_revision(data))
        if backup is not None:
            revision = max(revision, _salvage_revision(backup) + 1)
        return revision

    # -- reading ------------------------------------------------------------------------------

    def _read(self) -> tuple[bytes | None, dict]:
        """The file's bytes (None when missing) and its document, validated. A read that does not
        parse is read again: on a share, a read racing another mount's replace can mix the new
        file with pages of the old one (seen on sshfs). Only bytes that read the same twice are
        judged damaged, so a damaged file costs one more read, and a torn one a few."""
        data, pause = read_regular(self.path), READ_RETRY_FIRST
        for attempt in range(READ_RETRIES):
            if data is None:
                return None, empty_document()
            try:
                return data, _decode(data)
            except _Invalid as bad:
                if bad.newer is not None:
                    break  # a newer comfy-init's file is not torn: say so now
            again = read_regular(self.path)
            if again == data:
                break  # it stays bad
            if attempt:
                time.sleep(pause)
                pause *= 4
            data = again
        return (None, empty_document()) if data is None else (data, self._decode_or_raise(data))

    def _decode_or_raise(self, data: bytes) -> dict:
        try:
            return _decode(data)
        except _Invalid as bad:
            if bad.newer is not None:
                raise RegistryNewer(self.path, bad.newer) from None
            raise RegistryDamaged(self.path, bad.summary, bad.details, self._backup_state()) from None

    def _backup_state(self) -> int | str:
        """The .bak's revision if it is usable, else why not."""
        try:
            data = read_regular(self.backup_path)
        except DataError:
            return "is not a regular file"
        except IOFailure:
            return "cannot be read"
        if data is None:
            return "does not exist"
        try:
            return int(_decode(data)["revision"])
        except _Invalid as bad:
            return "is from a newer comfy-init" if bad.newer is not None else "is damaged too"

    def _valid_backup_or_raise(self) -> dict:
        """The .bak's document; else a RegistryDamaged whose fix (advisable) is the reset."""
        cannot = f"cannot restore from {REGISTRY_NAME}.bak"
        data = read_regular(self.backup_path)
        if data is None:
            raise RegistryDamaged(self.backup_path, f"{cannot}: it does not exist", [], "does not exist")
        try:
            return _decode(data)
        except _Invalid as bad:
            if bad.newer is not None:
                raise RegistryNewer(self.backup_path, bad.newer) from None
            raise RegistryDamaged(self.backup_path, f"{cannot}: it {bad.summary}", bad.details,
                                  "is damaged too") from None

    # -- writing ------------------------------------------------------------------------------

    def _make_meta_dir(self) -> None:
        try:
            os.makedirs(self.meta_dir, exist_ok=True)
        except OSError as exc:
            raise CannotCreateError(Problem(
                "cannot-create", f"cannot create the directory: {os.strerror(exc.errno) if exc.errno else exc}",
                path=self.meta_dir, fix="make the data directory writable for comfy-init")) from exc

    def _serialize_or_raise(self, document: Any) -> bytes:
        problems = schema_problems(document) if not _fast_validator().is_valid(document) else []
        try:
            text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        except ValueError as exc:  # NaN or infinity
            problems.append(str(exc))
        if problems:
            raise DataError(Problem(
                "registry-invalid-write", "comfy-init refused to write a registry that breaks its schema",
                path=self.path, details=["  " + p for p in problems],
                fix="nothing was written; this is a bug in comfy-init: please report these lines"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (written as \\ud800 by someone else) survives only as an escape.
            return (json.dumps(document, indent=2, ensure_ascii=True) + "\n").encode("ascii")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[str]:
        """Both write locks (flock, then the owner file); yields the tag of our lock domain for
        the temporary files' names."""
        with sharelock.hold(self.lock_path, self.owner_path, self.lock_timeout) as domain:
            yield sharelock.tag(domain)

    def _clean_temps(self, tag: str) -> None:
        for path in (self.path, self.backup_path, self.owner_path):
            clean_stale_temps(path, tag)

    def _keep_corrupt(self, data: bytes) -> str:
        """Keep the damaged entry under a new name; never overwrite anything, never follow a link."""
        base = os.path.join(self.meta_dir, f"{REGISTRY_NAME}.corrupt-{utc_stamp()}")
        try:
            if os.path.isfile(self.path) and not os.path.islink(self.path):
                return keep_copy_as_new_name(self.path, base, data)
            # A link, FIFO, socket or directory: renamed as it is (what stood there is kept).
            name = unused_name(base)
            os.rename(self.path, name)
            return name
        except OSError as exc:
            raise io_failure(base, "cannot keep the damaged registry (nothing was changed)", exc) from exc


class _Invalid(Exception):
    """Why some bytes are not a registry: a summary line, detail lines, or a newer schema_version."""

    def __init__(self, summary: str = "", details: list[str] | None = None, *, newer: Any = None):
        super().__init__(summary)
        self.summary = summary
        self.details = details or []
        self.newer = newer


class _DuplicateKey(ValueError):
    pass


def _decode(data: bytes) -> dict:
    """Parse and validate registry bytes; raise _Invalid saying what is wrong."""
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
    if type(version) is int and version == 1:
        document = upgrade_v1(document)
    if not _fast_validator().is_valid(document):
        problems = schema_problems(document)
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        raise _Invalid(f"does not match the registry schema ({count}):", ["  " + p for p in problems])
    return document


def upgrade_v1(document: dict) -> dict:
    """A version-1 document as version 2. Version 2 only adds optional instance keys (variant,
    gpus, share_gpu), so the upgrade is the version number; the next write stores version 2."""
    return dict(document, schema_version=SCHEMA_VERSION)


def schema():
    """The registry's JSON Schema (shipped in this package), parsed once."""
    global _schema_cache
    if _schema_cache is None:
        # A plain read beside this module: importlib.resources costs ~12 ms of imports (tempfile,
        # zipfile, pathlib) on every start and every HEALTHCHECK; the package is never a zip.
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), _SCHEMA_RESOURCE), encoding="utf-8") as file:
            _schema_cache = json.loads(file.read())
    return _schema_cache


def _fast_validator():
    global _fast_cache
    if _fast_cache is None:
        from comfy_init.store.schema import FastValidator

        _fast_cache = FastValidator(schema())
    return _fast_cache


def _validator():
    """The jsonschema validator, built (and jsonschema imported) on first use: for messages."""
    global _validator_cache
    if _validator_cache is None:
        import jsonschema

        _validator_cache = jsonschema.Draft202012Validator(schema())
    return _validator_cache


def schema_problems(document: Any) -> list[str]:
    """Every schema violation of `document`, one line each, as `<JSON path>: <what is wrong>`."""
    found = []
    for error in _validator().iter_errors(document):
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
    try:
        return json.dumps({k: v for k, v in before.items() if k not in own}, sort_keys=True) == \
            json.dumps({k: v for k, v in after.items() if k not in own}, sort_keys=True)
    except (TypeError, ValueError):
        return False  # something that cannot be JSON: let the schema check say what
