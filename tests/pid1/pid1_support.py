"""Helpers for the PID 1 tests: comfy-init in a new PID namespace, and a look at what runs in it.

`unshare --pid --fork --mount-proc CMD` forks CMD as PID 1 of a new PID namespace and waits for
it; it forwards no signal. So every signal a test means for PID 1 is sent to that process itself,
found as the only child of the unshare process. A signal from outside the namespace reaches its
init only when the init has a handler for it (or it is SIGKILL/SIGSTOP): a signal sent before
comfy-init installed its handlers would be dropped by the kernel, which is why `wait_handlers`
exists. SIGKILL to the init kills the whole namespace, which is how a test cleans up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from standin import free_port, get_json, make_checkout, wait_until  # noqa: E402

from comfy_init.registry import Registry  # noqa: E402

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]
COMFY_INIT = [sys.executable, "-m", "comfy_init", "run"]
# Variables of the developer's shell that would change what comfy-init or the stand-in do.
FOREIGN_PREFIXES = ("COMFY_", "STANDIN_", "__COMFY_CLI_SESSION__", "CLI_ARGS", "PUID", "PGID")

def namespace_problem() -> str | None:
    """Why comfy-init cannot be run as PID 1 of a new namespace here; None when it can."""
    if os.geteuid() != 0:
        return "needs root to make a PID namespace (unshare --pid)"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux), which is not installed"
    try:
        result = subprocess.run(UNSHARE + ["true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`unshare --pid --fork --mount-proc true` did not run: {error}"
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        return f"`unshare --pid --fork --mount-proc true` failed with {result.returncode}: {detail}"
    return None


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
    """Every process below `root` (not `root` itself): {pid: (ppid, state)}."""
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


def namespace_processes(init_pid: int) -> dict[int, tuple[int, str]]:
    """The processes of the PID namespace whose init is `init_pid` (host pids), init excluded.

    Every process of a PID namespace descends from its init (orphans are re-parented to it), and
    nothing here enters the namespace from outside, so the namespace is exactly init's subtree.
    A zombie's /proc/<pid>/ns/pid cannot be read, which is why the tree is used instead.
    """
    return descendants(init_pid)


def zombies(processes: dict[int, tuple[int, str]]) -> list[int]:
    return sorted(pid for pid, (_ppid, state) in processes.items() if state == "Z")


def status_field(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/status", encoding="utf-8") as file:
        for line in file:
            key, _, value = line.partition(":")
            if key == name:
                return value.strip()
    raise KeyError(name)


def signal_set(hex_mask: str) -> set[int]:
    """The signal numbers in a SigBlk/SigIgn/SigCgt mask of /proc/<pid>/status."""
    mask = int(hex_mask, 16)
    return {bit + 1 for bit in range(64) if mask >> bit & 1}


# -- the instance under test ---------------------------------------------------------------------

class Setup:
    """One instance's files: a stand-in checkout, a data tree, a free port, the stand-in's log."""

    def __init__(self, tmp_path: Path, instance_id: str = "pid1-test"):
        self.tmp_path = Path(tmp_path)
        self.instance_id = instance_id
        self.app = make_checkout(self.tmp_path / "app")
        self.data = self.tmp_path / "data"
        self.port = free_port()
        self.log_file = self.tmp_path / "standin-events.jsonl"

    @property
    def instance_dir(self) -> Path:
        return self.data / "instances" / self.instance_id

    @property
    def session_reboot_file(self) -> Path:
        return self.instance_dir / "user" / "comfy-init-session.reboot"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **extra) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
        env.update(
            COMFY_MULTI_INSTANCE="true",
            COMFY_INSTANCE_ID=self.instance_id,
            COMFY_DATA_DIRECTORY=str(self.data),
            COMFY_APP_DIRECTORY=str(self.app),
            COMFY_PORT=str(self.port),
            COMFY_LISTEN="127.0.0.1",
            COMFY_DEVICE="cpu",
            COMFY_STOP_TIMEOUT="5",
            STANDIN_LOG_FILE=str(self.log_file),
            PYTHONUNBUFFERED="1",
        )
        env.update({name: str(value) for name, value in extra.items()})
        return env

    def events(self, name: str | None = None) -> list[dict]:
        """The stand-in's lifecycle events so far (all, or those called `name`)."""
        try:
            text = self.log_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        events = []
        for line in text.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # a line being written right now
        return [e for e in events if name is None or e["event"] == name]

    def wait_event(self, name: str, count: int = 1, timeout: float = 15.0) -> list[dict]:
        def enough():
            found = self.events(name)
            return found if len(found) >= count else None
        enough.__name__ = f"{count} stand-in event(s) {name!r}"
        return wait_until(enough, timeout=timeout)

    def wait_ready(self, run: "ComfyInit", timeout: float = 15.0) -> dict:
        """Wait for /system_stats to answer; fail with comfy-init's log if comfy-init ended first."""
        def answered():
            if run.proc.poll() is not None:
                return "exited"
            return get_json(self.url + "/system_stats")
        result = wait_until(answered, timeout=timeout)
        if result == "exited":
            raise AssertionError(f"comfy-init exited with {run.proc.returncode} before ComfyUI was "
                                 f"ready\n{run.output()}")
        return result

    def registry(self) -> dict:
        return Registry(self.data / "meta").load()

    def temp_files(self) -> list[str]:
        temp = self.instance_dir / "temp"
        if not temp.exists():
            return []
        return sorted(str(p.relative_to(temp)) for p in temp.rglob("*"))


class ComfyInit:
    """One `comfy-init run`: as PID 1 of a new PID namespace (namespace=True) or as a plain child."""

    def __init__(self, env: dict[str, str], workdir: Path, *, namespace: bool = True,
                 argv: list[str] | None = None, marker: bytes = b"comfy_init",
                 name: str = "comfy-init", **popen_kwargs):
        self.env = env
        self.namespace = namespace
        self.argv = list(argv or COMFY_INIT)
        self.marker = marker  # in PID 1's command line once unshare's child has exec'd it
        self.out_path = Path(workdir) / f"{name}.stdout"
        self.err_path = Path(workdir) / f"{name}.stderr"
        self.popen_kwargs = popen_kwargs
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None
        self._init_pid: int | None = None

    def start(self) -> "ComfyInit":
        command = (UNSHARE if self.namespace else []) + self.argv
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(command, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, **self.popen_kwargs)
        return self

    # -- who is who ------------------------------------------------------------------------------

    @property
    def init_pid(self) -> int:
        """Host pid of comfy-init itself (PID 1 inside its namespace), once it has been exec'd."""
        if self._init_pid is None:
            self._init_pid = wait_until(self._find_init, timeout=10, interval=0.002)
        return self._init_pid

    def _find_init(self) -> int | None:
        if not self.namespace:
            return self.proc.pid
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children", encoding="ascii") as f:
                children = f.read().split()
        except OSError:
            return None
        if not children:
            return None
        pid = int(children[0])
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                exec_done = self.marker in file.read()
        except OSError:
            return None
        return pid if exec_done else None  # before exec it is still a copy of unshare

    def handlers_installed(self) -> bool:
        try:
            return signal.SIGTERM in signal_set(status_field(self.init_pid, "SigCgt"))
        except OSError:
            return False

    def wait_handlers(self, timeout: float = 10.0) -> None:
        """Wait until comfy-init handles SIGTERM: a signal sent earlier would not reach PID 1."""
        wait_until(self.handlers_installed, timeout=timeout, interval=0.002)

    def processes(self) -> dict[int, tuple[int, str]]:
        """Every process below comfy-init (for a namespace: everything in it but PID 1)."""
        return descendants(self.init_pid)

    # -- driving it ------------------------------------------------------------------------------

    def send(self, signum: int) -> float:
        """Send `signum` to comfy-init; return the monotonic time it was sent."""
        os.kill(self.init_pid, signum)
        return time.monotonic()

    def wait(self, timeout: float) -> int:
        """comfy-init's exit status (unshare passes its PID 1's status on)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"comfy-init still running after {timeout} s\n{self.output()}") from None

    def stderr(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def output(self) -> str:
        out = self.out_path.read_text(encoding="utf-8", errors="replace")
        return f"--- stderr ---\n{self.stderr()}--- stdout ---\n{out}"

    def wait_log(self, text: str, timeout: float = 15.0) -> float:
        """Wait for a line of comfy-init's stderr holding `text`; return when it was seen."""
        def logged():
            if text in self.stderr():
                return time.monotonic()
            if self.proc.poll() is not None and text not in self.stderr():
                raise AssertionError(f"comfy-init exited ({self.proc.returncode}) without logging "
                                     f"{text!r}\n{self.output()}")
            return None
        try:
            return wait_until(logged, timeout=timeout, interval=0.01)
        except TimeoutError:
            raise AssertionError(f"comfy-init did not log {text!r} within {timeout} s\n{self.output()}") from None

    def kill(self) -> None:
        """Kill comfy-init and everything below it (for a namespace, SIGKILL to its init does it)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        root = self._init_pid or self._find_init() or self.proc.pid
        below = descendants(root)
        for pid in [root, *below]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
