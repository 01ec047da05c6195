"""Model files for tests and bench/models.py: real safetensors files (sound or damaged on purpose),
and a data tree with instances made by comfy-init itself."""

import json
import os
import struct

from comfy_init.layout import Layout
from comfy_init.ops.instances import create_instance


def safetensors_prefix(data_bytes, header_length_delta=0):
    """The 8-byte length and the JSON header of a safetensors file of one U8 tensor of `data_bytes`."""
    header = json.dumps({"__metadata__": {"format": "pt"},
                         "weight": {"dtype": "U8", "shape": [data_bytes], "data_offsets": [0, data_bytes]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header) + header_length_delta) + header


def safetensors_bytes(data_bytes=64, *, seed=0, header_length_delta=0, cut=0, extra=0):
    """A safetensors file of one U8 tensor of `data_bytes` bytes. `header_length_delta` makes the
    8-byte length lie, `cut` drops bytes from the end (truncated), `extra` adds bytes after it."""
    payload = bytes((seed + i * 31) % 251 for i in range(min(data_bytes, 4096))) * (data_bytes // 4096 + 1)
    blob = safetensors_prefix(data_bytes, header_length_delta) + payload[:data_bytes] + b"\0" * extra
    return blob[: len(blob) - cut] if cut else blob


def write(path, data):
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as stream:
        stream.write(data)
    return path


def make_tree(data_dir, *instance_ids):
    """A data tree with these instances, created as `comfy-init instance create` does."""
    layout = Layout(os.fspath(data_dir))
    for instance_id in instance_ids:
        result = create_instance(layout, instance_id)
        assert result.exit_code == 0, result.problems
    return layout
