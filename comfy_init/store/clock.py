"""UTC time stamps as the store writes them (`2026-12-01T09:21:27Z`), and reading them back.

Only for display and for the "looks fresh" shortcut of a claim refusal: decisions that must not
depend on clocks (takeovers) use a process's own monotonic clock instead.
"""

import time

FORMAT = "%Y-%m-%dT%H:%M:%SZ"
FILE_STAMP = "%Y%m%dT%H%M%SZ"  # for file names: no colons


def utc_now():
    return time.strftime(FORMAT, time.gmtime())


def utc_stamp():
    """The current UTC time for a file name, e.g. 20261201T092127Z."""
    return time.strftime(FILE_STAMP, time.gmtime())


def parse_utc(text):
    """Seconds since the epoch for a stamp written by `utc_now`; None when it is not one."""
    import calendar  # only when a claim is judged: ~6 ms that the start path rarely needs

    try:
        return calendar.timegm(time.strptime(text, FORMAT))
    except (TypeError, ValueError):
        return None
