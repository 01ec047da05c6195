"""ComfyUI's own refusal to start, read from its output: `ASSETS_STARTUP_FAILED: <kind>`.

Releases after 0.3.64 open an asset database at start. When they cannot (another process holds
its lock for 5 s, the file is corrupt, from a newer release, not writable...), they log one line
`ASSETS_STARTUP_FAILED: <kind>` (after any log-level tag or colour), a few lines for the user,
and exit 1. The watch below is fed every chunk ComfyUI writes (pid1.output) and keeps the kind
and those lines; `problem()` turns them into ONE comfy-init line naming the instance, the
database and the fix, with an exit code of its own (docs/troubleshooting.md).

Cheap on purpose: a chunk without the marker costs one `in` test and keeps at most the unfinished
last line of each stream.
"""

import re
import threading

from comfy_init.comfyui.command import flag_values
from comfy_init.problems import Problem

MARKER = b"ASSETS_STARTUP_FAILED"
_KIND = re.compile(r"ASSETS_STARTUP_FAILED: ?([A-Za-z_]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TAG = re.compile(r"^\s*\[(DEBUG|DETAIL|INFO|WARNING|ERROR|CRITICAL)\]\s*")
_QUOTED_PATH = re.compile(r"'(/[^']+)'")
MESSAGE_LINES = 6       # ComfyUI's message after the marker has 2 to 4 lines
PARTIAL_LIMIT = 8192    # a \r-redrawn progress bar never ends its line: keep only its tail

ASSETS_VARIABLE = "COMFY_ASSETS"
_OWN_DB = ("comfy-init gives every instance its own database: remove --database-url from CLI_ARGS "
           f"so that two instances never name one file, or set {ASSETS_VARIABLE}=off "
           "(ComfyUI then starts without its asset database)")

# ComfyUI's kind -> (comfy-init problem kind, what happened, the fix)
KINDS = {
    "in_use": ("database-in-use", "is in use by another ComfyUI process (it waited 5 s for the lock)",
               "stop the other ComfyUI; " + _OWN_DB),
    "locked": ("database-in-use", "is locked by another program",
               "close the program that has it open (another ComfyUI, a database viewer); " + _OWN_DB),
    "not_writable": ("not-writable", "cannot be created, opened or written",
                     "make its folder writable for the user ComfyUI runs as (PUID/PGID), or run "
                     "`comfy-init check` to see what is wrong there"),
    "path_blocked": ("cannot-create", "cannot be created: a file stands where its folder belongs",
                     "move that file aside"),
    "corrupt": ("database-unusable", "is corrupt",
                "move the file aside (ComfyUI makes a new one and rescans your files at the next start)"),
    "newer_revision": ("database-unusable", "was last used by a newer ComfyUI release",
                       "run that newer release (COMFYUI_REF of the image), or move the file aside"),
    "unsupported_url": ("bad-setting", "is given by a --database-url ComfyUI does not support",
                        "give an sqlite:/// URL, or remove --database-url from CLI_ARGS"),
    "missing_packages": ("comfyui-startup-failed", "cannot be opened: ComfyUI's database packages are missing",
                         "install the checkout's requirements.txt into COMFY_PYTHON's environment, or "
                         f"set {ASSETS_VARIABLE}=off"),
}
_OTHER = ("comfyui-startup-failed", "could not be opened or upgraded",
          f"read ComfyUI's message above; set {ASSETS_VARIABLE}=off to start without the asset database")


class StartupFailureWatch:
    """Fed (fd, chunk) for ComfyUI's output; remembers the last ASSETS_STARTUP_FAILED and its message."""

    def __init__(self, armed=None):
        # armed() False: ComfyUI is past its start-up (ready), where the marker is only text (a
        # custom node's log line) and must not make a later exit a refusal.
        self._armed = armed
        self.kind = None
        self.message = []
        self._partial = {}
        self._collecting = {}  # fd -> lines still to take after a marker
        self._lock = threading.Lock()  # stdout and stderr are copied by two threads

    def feed(self, fd, chunk):
        with self._lock:
            data = self._partial.get(fd, b"") + chunk
            if MARKER not in data and not self._collecting.get(fd):
                self._partial[fd] = data[data.rfind(b"\n") + 1:][-PARTIAL_LIMIT:]
                return
            *lines, rest = data.split(b"\n")
            self._partial[fd] = rest[-PARTIAL_LIMIT:]
            for line in lines:
                self._take(fd, _clean(line))

    def _take(self, fd, line):
        found = _KIND.search(line)
        if found and (self._armed is None or self._armed()):
            self.kind = found.group(1)
            self.message = []
            self._collecting[fd] = MESSAGE_LINES
        elif self._collecting.get(fd):
            self._collecting[fd] -= 1
            if line.strip():
                self.message.append(line.strip())

    def problem(self, instance_id, command):
        """The Problem for what ComfyUI reported, or None when it reported nothing."""
        if self.kind is None:
            return None
        kind, what, fix = KINDS.get(self.kind, _OTHER)
        database = database_of(command) or _quoted_path(self.message) or "(ComfyUI's default database)"
        return Problem(kind, f"instance {instance_id!r}: ComfyUI refused to start: its database {database} "
                             f"{what} (ComfyUI: ASSETS_STARTUP_FAILED: {self.kind})", fix=fix)


def database_of(command):
    """The database file the command gives ComfyUI (the last --database-url wins, as in argparse),
    or None when it gives none or not a file."""
    values = [value for _flag, value, _given in flag_values(command, ("--database-url",)) if value]
    if not values or not values[-1].startswith("sqlite:///"):
        return None
    path = values[-1][len("sqlite:///"):].split("?", 1)[0]
    return path if path and path != ":memory:" else None


def _quoted_path(lines):
    for line in lines:
        found = _QUOTED_PATH.search(line)
        if found:
            return found.group(1)
    return None


def _clean(raw):
    text = _ANSI.sub("", raw.decode("utf-8", "replace")).replace("\r", "")
    return _TAG.sub("", text)
