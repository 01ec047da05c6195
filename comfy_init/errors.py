"""Exit codes (sysexits.h) and the one exception type that ends a command.

A `ComfyInitError` carries `Problem`s (comfy_init.problems): the renderer prints each as one line
(or as JSON), and the exit code follows from their kinds. The subclasses only name the kind a
plain message gets, so `raise DataError("...")` still works where no finer kind fits.
"""

from comfy_init.exitcodes import (  # noqa: F401  (re-exported: callers name codes here)
    CANTCREAT, CONFIG, DATAERR, FAILED, IOERR, NOINPUT, NOPERM, OK, TEMPFAIL, USAGE)
from comfy_init.problems import KINDS, Problem, exit_code_of


class ComfyInitError(Exception):
    """A failure the user can fix: `problems` says what and how, `exit_code` follows from them."""

    default_kind = "failed"

    def __init__(self, *problems):
        self.problems = [p if isinstance(p, Problem) else Problem(self.default_kind, str(p))
                         for p in problems]
        super().__init__("\n".join(line for p in self.problems for line in p.lines()))
        self.exit_code = exit_code_of(self.problems) or FAILED

    def lines(self):
        return [line for problem in self.problems for line in problem.lines()]


class ConfigError(ComfyInitError):
    """An environment variable or option has a bad value (exit 78)."""

    default_kind = "bad-setting"


class UsageError(ComfyInitError):
    """A command got arguments it does not take (exit 64)."""

    default_kind = "usage"


class DataError(ComfyInitError):
    """The data tree or the registry holds something comfy-init must not touch (exit 65)."""

    default_kind = "invalid-data"


class MissingPathError(ComfyInitError):
    """A path that must exist does not (exit 66)."""

    default_kind = "missing-path"


class CannotCreateError(ComfyInitError):
    """A file or directory could not be created (exit 73)."""

    default_kind = "cannot-create"


class IOFailure(ComfyInitError):
    """Reading or writing failed below us (exit 74)."""

    default_kind = "io-error"


class BusyError(ComfyInitError):
    """Someone else holds what we need right now: a claim, a lock, a port (exit 75)."""

    default_kind = "instance-held"


class PermissionDeniedError(ComfyInitError):
    """A path must be written and cannot be (exit 77)."""

    default_kind = "not-writable"


def error_for(*problems):
    """A ComfyInitError of the subclass that matches the problems' exit code, for `except` clauses
    that name a class; the exit code itself always comes from the problems."""
    code = exit_code_of(problems)
    for cls in (ConfigError, UsageError, DataError, MissingPathError, CannotCreateError, IOFailure,
                BusyError, PermissionDeniedError):
        if KINDS[cls.default_kind][0] == code:
            return cls(*problems)
    return ComfyInitError(*problems)
