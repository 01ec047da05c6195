"""Helpers for tests that run the stand-in ComfyUI (tests/standin_comfyui) as a real process."""

from __future__ import annotations

import json
import shutil
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, TypeVar

STANDIN_DIR = Path(__file__).resolve().parent / "standin_comfyui"

# comfy-init detects a feature by finding the quoted flag in comfy/cli_args.py.
FEATURE_FLAGS = {
    "base_directory": '"--base-directory"',
    "database_url": '"--database-url"',
}

T = TypeVar("T")


def make_checkout(dest: Path, *, base_directory: bool = True, database_url: bool = True) -> Path:
    """Copy the stand-in to `dest`; a feature set to False is removed, as in an old release.

    Removing a flag deletes its declaration line from the copy's comfy/cli_args.py, so the copy
    both looks old to comfy-init's detection and rejects the flag (argparse, exit 2).
    """
    dest = Path(dest)
    shutil.copytree(STANDIN_DIR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    wanted = {"base_directory": base_directory, "database_url": database_url}
    dropped = [FEATURE_FLAGS[name] for name, keep in wanted.items() if not keep]
    if dropped:
        cli_args = dest / "comfy" / "cli_args.py"
        lines = cli_args.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not any(flag in line for flag in dropped)]
        cli_args.write_text("".join(kept), encoding="utf-8")
    return dest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Call `predicate` until it returns something truthy, and return that.

    Exceptions raised by the predicate count as "not yet"; the last one is named in the
    TimeoutError raised after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except Exception as e:  # noqa: BLE001 - "not ready yet" takes many shapes
            last_error = e
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            name = getattr(predicate, "__name__", repr(predicate))
            detail = f"; last error: {last_error!r}" if last_error is not None else ""
            raise TimeoutError(f"{name} was not true within {timeout:.1f} s{detail}")
        time.sleep(interval)


def get_json(url: str, timeout: float = 2.0) -> Any:
    """GET `url` and decode its JSON body (urllib raises HTTPError for a status >= 400)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def post_json(url: str, timeout: float = 2.0) -> Any:
    """POST an empty body to `url` and decode its JSON answer."""
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)
