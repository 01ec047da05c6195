"""What can be wrong with one model file, judged from its name, its stat and (safetensors) its
header: never from reading the whole file.

- empty (size 0);
- a download left over: `.part`, `.tmp`, `.download`, `.crdownload`, `.partial`, `.incomplete`,
  or a `.<name>.tmp-<...>` temporary name;
- a safetensors file whose header does not parse, or whose declared data does not fill the file
  exactly: size must be 8 + N + max(data_offsets end), N the little-endian u64 in front;
- still growing: size or mtime differ between two looks (a download in progress).
"""

import json
import os
import re
import struct

PARTIAL_SUFFIXES = (".part", ".tmp", ".download", ".crdownload", ".partial", ".incomplete")
_TEMP_NAME = re.compile(r"\A\.(?P<name>.+)\.tmp-[^/]*\Z")
# One search per file name in the walk's loop: whether partial_target would find something.
PARTIAL_NAME = re.compile(r"(?i)\.(?:part|tmp|download|crdownload|partial|incomplete)\Z|\A\..+\.tmp-")
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
# A header larger than this is not a model's (ComfyUI's safetensors loader caps it at 100 MB).
MAX_HEADER = 100_000_000
# A file modified less than this many seconds ago is looked at a second time (it may be growing).
RECENT_SECONDS = 120


def partial_target(name):
    """The file a left-over download of this name was meant to become, or None if it is not one."""
    lowered = name.lower()
    for suffix in PARTIAL_SUFFIXES:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    match = _TEMP_NAME.match(name)
    return match.group("name") if match else None


def is_safetensors(name):
    return name.lower().endswith(SAFETENSORS_SUFFIXES)


def _header_end(header):
    """max(data_offsets end) of a parsed header; ValueError when a tensor entry is malformed."""
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    end = 0
    for name, tensor in header.items():
        if name == "__metadata__":
            if not isinstance(tensor, dict):
                raise ValueError("__metadata__ is not an object")
            continue
        offsets = tensor.get("data_offsets") if isinstance(tensor, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(v) is int for v in offsets)
                or not 0 <= offsets[0] <= offsets[1] or not isinstance(tensor.get("dtype"), str)
                or not isinstance(tensor.get("shape"), list)):
            raise ValueError(f"tensor {name!r} has no valid dtype, shape and data_offsets")
        end = max(end, offsets[1])
    return end


def safetensors_damage(path, size):
    """Why the safetensors file at `path` (of `size` bytes) is damaged, or "" when its header is sound
    and accounts for every byte. Reads the 8-byte length and the header only."""
    if size < 8:
        return f"only {size} bytes: not even the 8-byte header length"
    with open(path, "rb", buffering=0) as stream:
        (length,) = struct.unpack("<Q", stream.read(8))
        if length > min(MAX_HEADER, size - 8):
            return f"declares a {length}-byte header in a {size}-byte file"
        raw = stream.read(length)
    try:
        end = _header_end(json.loads(raw))
    except (ValueError, UnicodeDecodeError) as error:
        return f"the header does not parse: {error}"
    except RecursionError:
        return "the header does not parse: its JSON is nested too deeply"
    expected = 8 + length + end
    if expected != size:
        what = "truncated" if size < expected else "longer than its header says"
        return f"{what}: the header accounts for {expected} bytes, the file has {size}"
    return ""


def grew(first, second):
    """Whether two lstat results of one path say it changed (None: it is gone)."""
    return second is None or (first.st_size, first.st_mtime_ns, first.st_ino) != (
        second.st_size, second.st_mtime_ns, second.st_ino)


def look_again(path):
    try:
        return os.lstat(path)
    except OSError:
        return None
