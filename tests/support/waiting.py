"""Waiting for a condition instead of sleeping."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


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
