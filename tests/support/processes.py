"""`comfy-init run` as a real process in a test: started with an environment, its output captured in
files, waited on with comfy-init's own log in every failure, stopped with SIGTERM; plus a look at
/proc for what runs below it.

Every child is spawned with SIGINT at its default disposition (`spawn`): an ignored signal stays
ignored across exec, and pytest started as a background job of a script (`pytest ... &`) has
SIGINT ignored, which would otherwise reach every process a test starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

from tests.support.http import get_json
from tests.support.waiting import wait_until

from tests.support.registry_data import registry_at

COMFY_INIT = [sys.executable, "-m", "comfy_init", "run"]
# Variables of the developer's shell that would change what comfy-init or the stand-in do.
FOREIGN_PREFIXES = ("COMFY_", "STANDIN_", "__COMFY_CLI_SESSION__", "CLI_ARGS", "PUID", "PGID")


# -- environment and spawning -------------------------------------------------------------------

def instance_env(*, instance_id: str, data: Path, app: Path, port: int, **extra) -> dict[str, str]:
    """This process's environment without foreign variables, set up for one multi-instance
    comfy-init on 127.0.0.1:`port` on the CPU; `extra` added last (values made strings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    env.update(
        COMFY_MULTI_INSTANCE="true",
        COMFY_INSTANCE_ID=instance_id,
        COMFY_DATA_DIRECTORY=str(data),
        COMFY_APP_DIRECTORY=str(app),
        COMFY_PORT=str(port),
        COMFY_LISTEN="127.0.0.1",
        COMFY_DEVICE="cpu",
        COMFY_STOP_TIMEOUT="5",
        PYTHONUNBUFFERED="1",
    )
    env.update({name: str(value) for name, value in extra.items()})
    return env


def default_sigint() -> None:
    """Put SIGINT back to its default disposition (as a preexec_fn, in the child)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(argv: list[str], *, preexec_fn: Callable[[], None] | None = None,
          **popen_kwargs) -> subprocess.Popen:
    """subprocess.Popen, with SIGINT at its default disposition in the child whatever it is here;
    a `preexec_fn` given runs after that (so it may still ignore SIGINT on purpose)."""
    def prepare():
        default_sigint()
        if preexec_fn is not None:
            preexec_fn()
    return subprocess.Popen(argv, preexec_fn=prepare, **popen_kwargs)


# -- files comfy-init and the stand-in write ----------------------------------------------------

def read_registry(data: Path) -> dict:
    """The instance registry of the data tree `data` (meta/instance-registry.json)."""
    return registry_at(Path(data) / "meta").load()


def read_events(path: Path, name: str | None = None) -> list[dict]:
    """The stand-in's lifecycle events in its STANDIN_LOG_FILE so far (all, or those called `name`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line being written right now
    return [e for e in events if name is None or e["event"] == name]


# -- /proc --------------------------------------------------------------------------------------

def _stat(pid: int) -> tuple[int, str] | None:
    """(ppid, state letter) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as file:
            text = file.read()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return int(fields[1]), fields[0]


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    info = _stat(pid)
    return info is not None and info[1] != "Z"


def process_table() -> dict[int, tuple[int, str]]:
    """{pid: (ppid, state)} of every process this /proc shows."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info is not None:
                table[int(entry)] = info
    return table


def descendants(root: int, table: dict[int, tuple[int, str]] | None = None) -> dict[int, tuple[int, str]]:
    """Every process below `root` (not `root` itself), parents before their children:
    {pid: (ppid, state)}."""
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _state) in table.items():
        children.setdefault(ppid, []).append(pid)
    found = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid in found or pid not in table:
            continue
        found[pid] = table[pid]
        todo.extend(children.get(pid, []))
    return found


# -- one run -------------------------------------------------------------------------------------

class ComfyInitProcess:
    """One `comfy-init run` (or `argv`, standing in its place) started by the test, with its
    stdout and stderr in <workdir>/<name>.stdout and .stderr."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str = "comfy-init", *,
                 argv: list[str] | None = None, **popen_kwargs):
        self.env = env
        self.name = name
        self.argv = list(argv or COMFY_INIT)
        self.out_path = Path(workdir) / f"{name}.stdout"
        self.err_path = Path(workdir) / f"{name}.stderr"
        self.popen_kwargs = popen_kwargs
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None

    def command(self) -> list[str]:
        return self.argv

    def start(self) -> "ComfyInitProcess":
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.started_at = time.monotonic()
            self.proc = spawn(self.command(), env=self.env, stdin=subprocess.DEVNULL,
                              stdout=out, stderr=err, **self.popen_kwargs)
        return self

    # -- what it is and what it wrote ------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.env["COMFY_PORT"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def output(self) -> str:
        out = self.out_path.read_text(encoding="utf-8", errors="replace")
        return f"--- {self.name} stderr ---\n{self.stderr()}--- {self.name} stdout ---\n{out}"

    def events(self, name: str | None = None) -> list[dict]:
        """The stand-in's events in this run's STANDIN_LOG_FILE (none when it has no such file)."""
        path = self.env.get("STANDIN_LOG_FILE")
        return read_events(Path(path), name) if path else []

    def comfyui_pids(self) -> list[int]:
        """The pids the stand-in ComfyUIs of this run logged at their start."""
        return [e["pid"] for e in self.events("started")]

    # -- waiting on it ---------------------------------------------------------------------------

    def wait_ready(self, timeout: float = 15.0) -> dict:
        """Wait for /system_stats to answer; fail with comfy-init's log if comfy-init ended first."""
        def answered():
            if self.proc.poll() is not None:
                return "exited"
            return get_json(self.url + "/system_stats")
        result = wait_until(answered, timeout=timeout)
        if result == "exited":
            raise AssertionError(f"{self.name} exited with {self.proc.returncode} before ComfyUI was "
                                 f"ready\n{self.output()}")
        return result

    def wait_logged(self, text: str, timeout: float = 15.0) -> float:
        """Seconds from this run's start until a line of its stderr held `text`."""
        def logged():
            if text in self.stderr():
                return time.monotonic() - self.started_at
            if self.proc.poll() is not None and text not in self.stderr():
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) without logging "
                                     f"{text!r}\n{self.output()}")
            return None
        try:
            return wait_until(logged, timeout=timeout, interval=0.005)
        except TimeoutError:
            raise AssertionError(f"{self.name} did not log {text!r} in {timeout} s\n{self.output()}") from None

    def wait(self, timeout: float) -> int:
        """Its exit status; an AssertionError with its output if it still runs after `timeout` s."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout} s\n{self.output()}") from None

    # -- driving it ------------------------------------------------------------------------------

    @property
    def signal_pid(self) -> int:
        """The process a signal meant for comfy-init goes to."""
        return self.proc.pid

    def send(self, signum: int) -> float:
        """Send `signum` to comfy-init; return the monotonic time it was sent."""
        os.kill(self.signal_pid, signum)
        return time.monotonic()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (unless it has ended already), then its exit status as `wait` gives it."""
        if self.proc.poll() is None:
            self.send(signal.SIGTERM)
        return self.wait(timeout=timeout)

    def kill(self, also: Iterable[int] = ()) -> None:
        """SIGKILL it, everything below it, and the host pids `also` (say ComfyUIs that may be
        orphans by now); each gets a SIGCONT first, in case a test stopped it."""
        if self.proc is None:
            return
        running = self.proc.poll() is None
        below = list(descendants(self.proc.pid)) if running else []
        for pid in [*([self.proc.pid] if running else []), *below, *also]:
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
