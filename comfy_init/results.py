"""What every operation returns, and the one renderer that prints it.

An operation (health, `run --dry-run`, every management command) returns a `Result`: the command,
its data, the lines a person reads, the problems found, and the exit code. `render` prints it as
text (lines on stdout, problems as ERROR lines on stderr) or as one JSON envelope on stdout:

    {"comfy_init_result": 1, "command": "health", "status": "ok" | "failed",
     "exit_code": 0, "data": {...}, "problems": [{"kind", "path", "message", "fix", ...}]}

The envelope is the same for success and failure; `comfy_init_result` is its version and changes
only when a key changes meaning. Standard library only: `run --dry-run` uses it on the start path.
"""

import json
import sys

from comfy_init import log
from comfy_init.problems import exit_code_of

ENVELOPE_VERSION = 1


class Result:
    __slots__ = ("command", "data", "lines", "problems", "exit_code")

    def __init__(self, command, data=None, lines=(), problems=(), exit_code=None):
        self.command = command
        self.data = data
        self.lines = list(lines)
        self.problems = list(problems)
        self.exit_code = exit_code_of(self.problems) if exit_code is None else exit_code

    @classmethod
    def failure(cls, command, error, data=None):
        """The result of an operation that raised `error` (a ComfyInitError)."""
        return cls(command, data, problems=error.problems, exit_code=error.exit_code)

    @property
    def status(self):
        return "ok" if self.exit_code == 0 else "failed"

    def envelope(self):
        return {
            "comfy_init_result": ENVELOPE_VERSION,
            "command": self.command,
            "status": self.status,
            "exit_code": self.exit_code,
            "data": self.data,
            "problems": [problem.as_dict() for problem in self.problems],
        }


def render(result, as_json=False, stdout=None):
    """Print `result` and return its exit code."""
    stdout = sys.stdout if stdout is None else stdout
    if as_json:
        # ensure_ascii: a path with bytes that are not UTF-8 is still valid JSON (\udcxx escapes).
        log.write(stdout, json.dumps(result.envelope(), indent=2, default=str) + "\n")
        return result.exit_code
    if result.lines:
        log.write(stdout, "".join(line + "\n" for line in result.lines))
    for problem in result.problems:
        for line in problem.lines():
            log.error(line)
    return result.exit_code
