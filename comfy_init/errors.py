"""Errors that end a command, each carrying its sysexits.h exit code.

Every failure a user can cause or fix is one of these: the CLI prints `message` (one line per
problem) and exits with `exit_code`, never a traceback.
"""

OK = 0
FAILED = 1
USAGE = 64
DATAERR = 65
NOINPUT = 66
CANTCREAT = 73
IOERR = 74
TEMPFAIL = 75
NOPERM = 77
CONFIG = 78


class ComfyInitError(Exception):
    """Base class: `problems` are the lines to print, `exit_code` the status to leave with."""

    exit_code = FAILED

    def __init__(self, *problems: str):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class ConfigError(ComfyInitError):
    """An environment variable or option has a bad value (exit 78)."""

    exit_code = CONFIG


class DataError(ComfyInitError):
    """The data tree or the registry holds something comfy-init must not touch (exit 65)."""

    exit_code = DATAERR


class MissingPathError(ComfyInitError):
    """A path that must exist does not (exit 66)."""

    exit_code = NOINPUT


class CannotCreateError(ComfyInitError):
    """A file or directory could not be created (exit 73)."""

    exit_code = CANTCREAT


class IOFailure(ComfyInitError):
    """Reading or writing failed below us (exit 74)."""

    exit_code = IOERR


class BusyError(ComfyInitError):
    """Someone else holds what we need right now: a claim, a lock, a port (exit 75)."""

    exit_code = TEMPFAIL


class PermissionDeniedError(ComfyInitError):
    """A path must be written and cannot be (exit 77)."""

    exit_code = NOPERM
