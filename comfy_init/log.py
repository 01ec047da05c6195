"""Log lines for people and log collectors: every line starts with its level and who speaks.

    ERROR: comfy-init[core-1]: <path>: <what is wrong>; <fix>

Plain writes to stderr, flushed at once: PID 1's output is the container log, and a line that
sits in a buffer when the container is killed is a line nobody sees. Paths may hold bytes that
are not UTF-8 (they arrive as surrogate escapes): they are written escaped, never as a crash.
"""

import sys

_prefix = "comfy-init"


def set_instance(instance_id):
    """Name the instance in every later line (`comfy-init[core-1]`); None names none."""
    global _prefix
    _prefix = f"comfy-init[{instance_id}]" if instance_id else "comfy-init"


def write(stream, text):
    """Write `text` to a text stream; characters it cannot encode are written backslash-escaped."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        stream.write(text)
    except UnicodeEncodeError:
        stream.write(text.encode(encoding, "backslashreplace").decode(encoding, "replace"))
    stream.flush()


def _emit(level, message):
    lines = str(message).splitlines() or [""]
    write(sys.stderr, "".join(f"{level}: {_prefix}: {line}\n" for line in lines))


def info(message):
    _emit("INFO", message)


def warning(message):
    _emit("WARNING", message)


def error(message):
    _emit("ERROR", message)
