"""The model hash cache, meta/model-hashes.json: a file's BLAKE3 and header verdict, keyed by what
stat says of it, so re-verifying an unchanged tree is stat calls only.

    {"comfy_init_model_hashes": 1,
     "dirs": {"<directory>": {"<file name>": "<stat>:<blake3 hex or empty>:<verdict>"}}}

<stat> is the decimal of (mtime_ns << 128) | (inode << 64) | size: one exact number for the three,
made from a stat result with two shifts and one str() (formatting three numbers costs twice as
much, and a re-verify does it once per file). <verdict> is `-` (header not checked), `+` (checked
and sound) or `!<why it is damaged>`. One string per entry, not a list: a JSON parser reads
100,000 strings three times faster than as many lists. Entries are grouped by directory: a walk
looks a directory up once and then each file by its name (no path string built per file, and a
small table per directory instead of one of 100,000 keys), and the file is a sixth smaller.
`<directory>` is relative to the data root (with `/`), so the cache holds at any mount point; a
directory outside the data root (an extra_model_paths.yaml target) is named by its absolute path.
A file's key (`lookup`, `record`, `forget`) is `<directory>/<file name>`. An entry counts only while size, mtime_ns and inode all
still match: anything that rewrites a file changes one of them. Hashing is not done here (blake3
belongs to ops); this module only keeps entries.

Readers take no lock (the file is only ever replaced atomically). A writer takes
`model-hashes.json.lock`, reads the file again, merges its own entries into what is there (so two
verifiers running at once both keep what they learnt), drops the entries of files it saw gone,
and replaces the file atomically. A cache that does not parse, or has another shape, is rebuilt:
the damaged bytes are kept once as `model-hashes.json.damaged` and an empty cache starts over.
"""

import itertools
import json
import os

from comfy_init.errors import ComfyInitError
from comfy_init.store import locks
from comfy_init.store.files import read_regular, write_atomic

VERSION = 1
LOCK_TIMEOUT = 30.0
_KEY = "comfy_init_model_hashes"


def _decode(data):
    """{directory: {name: entry}} of cache bytes, or None when they are not a cache of this version."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        return None
    if not isinstance(document, dict) or document.get(_KEY) != VERSION:
        return None
    dirs = document.get("dirs")
    if not isinstance(dirs, dict) or set(map(type, dirs.values())) - {dict}:
        return None
    if set(map(type, itertools.chain.from_iterable(d.values() for d in dirs.values()))) - {str}:
        return {d: {n: e for n, e in names.items() if _valid(e)} for d, names in dirs.items()}
    return dirs  # (a string's content is checked where it is used)


def _valid(entry):
    return type(entry) is str and entry.count(":") >= 2


def stat_key(info):
    """The <stat> of an entry: size, mtime_ns and inode in one exact number, as a string."""
    return str((info.st_mtime_ns << 128) | (info.st_ino << 64) | info.st_size)


def _encode(info, digest, damage):
    verdict = "-" if damage is None else ("+" if damage == "" else "!" + damage)
    return f"{stat_key(info)}:{digest or ''}:{verdict}"


def hashed_in(names, name, info):
    """Whether `names` (a `directory()` table) has a hash for file `name` at `info`: the one
    question a re-verify asks of every file, cut to the bone (no piece of the entry is copied)."""
    entry = names.get(name)
    if entry is None:
        return False
    stat = str((info.st_mtime_ns << 128) | (info.st_ino << 64) | info.st_size)
    end = len(stat)  # "<stat>:<64 hex>:"
    return entry.startswith(stat) and entry[end:end + 1] == ":" and entry[end + 65:end + 66] == ":"


_EMPTY = {}


class HashCache:
    """The entries of one data tree's cache; `lookup` and `record` while walking, `save` at the end."""

    def __init__(self, layout):
        self.layout = layout
        self.dirs = {}
        self.damaged = False  # the file was there and not a cache: rebuilt on save
        self._new = {}  # key -> entry
        self._gone = set()

    @classmethod
    def load(cls, layout):
        """The cache as it is on disk (empty when missing or damaged; never raises for content)."""
        cache = cls(layout)
        try:
            data = read_regular(layout.model_hash_cache)
        except ComfyInitError:
            data, cache.damaged = None, True  # a link or FIFO planted there: rebuilt (moved aside) on save
        if data is not None:
            dirs = _decode(data)
            cache.damaged = dirs is None
            cache.dirs = dirs or {}
        return cache

    def directory(self, directory_key):
        """{file name: entry} of one directory as loaded (for hashed_in); empty when none."""
        return self.dirs.get(directory_key, _EMPTY)

    def has(self, key):
        directory, _, name = key.rpartition("/")
        return name in self.dirs.get(directory, _EMPTY)

    def count(self):
        """How many entries were loaded."""
        return sum(map(len, self.dirs.values()))

    def keys(self):
        return [f"{d}/{n}" for d, names in self.dirs.items() for n in names]

    def lookup(self, key, info):
        """(hash, damage) recorded for `key` while `info` (an os.stat_result) still matches, else None.
        hash is None when not hashed; damage None when not checked, "" when sound."""
        entry = self._new.get(key) if self._new else None
        if entry is None:
            directory, _, name = key.rpartition("/")
            entry = self.dirs.get(directory, _EMPTY).get(name)
        if entry is None:
            return None
        stat, _, rest = entry.partition(":")
        if stat != stat_key(info):
            return None
        digest, _, verdict = rest.partition(":")
        return digest or None, None if verdict == "-" else verdict[1:]

    def hashed(self, key, info):
        """Whether the loaded cache has a hash for `key` at `info` (hashed_in by key)."""
        directory, _, name = key.rpartition("/")
        return hashed_in(self.dirs.get(directory, _EMPTY), name, info)

    def record(self, key, info, digest=None, damage=None):
        """Keep `digest` and/or `damage` ("" when the header was checked and is sound) for `key` at
        `info`; a field given as None keeps what a matching entry already says."""
        known = self.lookup(key, info)
        if known is not None:
            digest = known[0] if digest is None else digest
            damage = known[1] if damage is None else damage
        self._new[key] = _encode(info, digest, damage)

    def forget(self, key):
        """`key`'s file is gone: its entry is dropped on save."""
        self._gone.add(key)
        self._new.pop(key, None)

    @property
    def changed(self):
        return bool(self._new) or any(self.has(key) for key in self._gone) or self.damaged

    def _merged(self, current):
        merged = {d: dict(names) for d, names in current.items()}
        for key in self._gone:
            directory, _, name = key.rpartition("/")
            merged.get(directory, {}).pop(name, None)
        for key, entry in self._new.items():
            directory, _, name = key.rpartition("/")
            merged.setdefault(directory, {})[name] = entry
        return {d: names for d, names in merged.items() if names}

    def save(self):
        """Merge what was learnt into the file on disk, under its lock; a no-op when nothing changed."""
        if not self.changed:
            return False
        path = self.layout.model_hash_cache
        os.makedirs(self.layout.meta, exist_ok=True)
        with locks.hold(self.layout.model_hash_cache_lock, timeout=LOCK_TIMEOUT):
            try:
                data = read_regular(path)
            except ComfyInitError:
                data = b""  # not a regular file: write_atomic renames over it (the link itself, never followed)
            current = _decode(data) if data is not None else {}
            backup = self.layout.model_hash_cache_damaged if current is None and data else None
            merged = self._merged(current or {})
            document = {_KEY: VERSION, "dirs": merged}
            write_atomic(path, json.dumps(document, separators=(",", ":")).encode(), backup=backup)
        self.dirs, self._new, self._gone, self.damaged = merged, {}, set(), False
        return True

    def save_or_say_why(self):
        """`save`, for callers whose findings stand without the cache (a read-only meta/): None when
        saved (or nothing to save), else the line that says why it could not be."""
        try:
            self.save()
        except (ComfyInitError, OSError) as error:
            why = error.problems[0].line() if isinstance(error, ComfyInitError) else str(error)
            return f"warning: the hash cache was not saved (the next run hashes again): {why}"
        return None
