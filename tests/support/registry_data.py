"""Documents and helpers shared by the store tests (tests/store): registry documents, temporary
files, a flock held by another process, a Registry for a meta/ directory."""

import contextlib
import glob
import os
import subprocess
import sys

INSTANCE = {"created_at": "2026-11-28T06:00:00Z", "claim_generation": 0}


def instance(**extra):
    return {**INSTANCE, **extra}


def claim(**extra):
    value = {
        "generation": 3,
        "token": "5d1f0c9e2b7a4e21a3c8f0d9b6e7a1c2",
        "host": "gpu-node-1",
        "boot_id": "0b6f2c1e-8d4a-4f7e-9a3b-2c5d7e9f1a0b",
        "container_id": "4f2a9c1d7e3b",
        "pid": 1,
        "since": "2026-11-28T06:30:00Z",
        "renewed_at": "2026-11-28T06:59:30Z",
        "heartbeat": 58,
        "lease_seconds": 30.0,
        "port": 8188,
        "listen": "0.0.0.0",
    }
    value.update(extra)
    return value


def temp_files(meta):
    """Temporary files that interrupted writes can leave in the meta directory."""
    return sorted(glob.glob(os.path.join(os.fspath(meta), ".instance-registry.json*.tmp-*")))


_HOLD_FLOCK = """
import fcntl, sys
with open(sys.argv[1], "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def flock_held_elsewhere(path):
    """Another process holds an exclusive flock on `path` until the block ends or the yielded
    release() is called (it closes the holder's stdin and waits for it to exit)."""
    with subprocess.Popen([sys.executable, "-c", _HOLD_FLOCK, os.fspath(path)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        def release():
            if not holder.stdin.closed:
                holder.stdin.close()
            holder.wait(timeout=10)

        try:
            assert holder.stdout.readline() == "locked\n"
            yield release
        finally:
            release()


def registry_at(meta_dir, **options):
    """The Registry of the data tree whose meta/ directory is `meta_dir`."""
    from comfy_init.layout import Layout
    from comfy_init.store.registry import Registry

    meta_dir = os.path.abspath(os.fspath(meta_dir))
    registry = Registry(Layout(os.path.dirname(meta_dir)), **options)
    assert registry.meta_dir == meta_dir, f"{meta_dir} is not the meta/ directory of a data tree"
    return registry
