"""Log lines for people and log collectors: every line starts with its level.

Plain writes to stderr, flushed at once: PID 1's output is the container log, and a line that
sits in a buffer when the container is killed is a line nobody sees.
"""

import sys

_prefix = "comfy-init"


def set_instance(instance_id):
    global _prefix
    _prefix = f"comfy-init[{instance_id}]"


def _emit(level, message):
    for line in str(message).splitlines() or [""]:
        sys.stderr.write(f"{level}: {_prefix}: {line}\n")
    sys.stderr.flush()


def info(message):
    _emit("INFO", message)


def warning(message):
    _emit("WARNING", message)


def error(message):
    _emit("ERROR", message)
