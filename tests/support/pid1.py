"""Helpers for the PID 1 tests: comfy-init in a new PID namespace, and a look at what runs in it.

`unshare --pid --fork --mount-proc CMD` forks CMD as PID 1 of a new PID namespace and waits for
it; it forwards no signal. So every signal a test means for PID 1 is sent to that process itself,
found as the only child of the unshare process. A signal from outside the namespace reaches its
init only when the init has a handler for it (or it is SIGKILL/SIGSTOP): a signal sent before
comfy-init installed its handlers would be dropped by the kernel, which is why `wait_handlers`
exists. SIGKILL to the init kills the whole namespace, which is how a test cleans up.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from tests.support.processes import ComfyInitProcess, descendants, instance_env, read_events, read_registry
from tests.support.ports import free_port
from tests.support.standin import make_checkout
from tests.support.waiting import wait_until

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]


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

    def env(self, **extra) -> dict[str, str]:
        return instance_env(instance_id=self.instance_id, data=self.data, app=self.app, port=self.port,
                            STANDIN_LOG_FILE=self.log_file, **extra)

    def events(self, name: str | None = None) -> list[dict]:
        """The stand-in's lifecycle events so far (all, or those called `name`)."""
        return read_events(self.log_file, name)

    def wait_event(self, name: str, count: int = 1, timeout: float = 15.0) -> list[dict]:
        def enough():
            found = self.events(name)
            return found if len(found) >= count else None
        enough.__name__ = f"{count} stand-in event(s) {name!r}"
        return wait_until(enough, timeout=timeout)

    def registry(self) -> dict:
        return read_registry(self.data)

    def temp_files(self) -> list[str]:
        temp = self.instance_dir / "temp"
        if not temp.exists():
            return []
        return sorted(str(p.relative_to(temp)) for p in temp.rglob("*"))


class ComfyInit(ComfyInitProcess):
    """One `comfy-init run`: as PID 1 of a new PID namespace (namespace=True) or as a plain child.

    Signals (`send`, `stop`) go to comfy-init itself, not to unshare, which forwards none.
    """

    def __init__(self, env: dict[str, str], workdir: Path, *, namespace: bool = True,
                 argv: list[str] | None = None, marker: bytes = b"comfy_init",
                 name: str = "comfy-init", **popen_kwargs):
        super().__init__(env, workdir, name, argv=argv, **popen_kwargs)
        self.namespace = namespace
        self.marker = marker  # in PID 1's command line once unshare's child has exec'd it
        self._init_pid: int | None = None

    def command(self) -> list[str]:
        return (UNSHARE if self.namespace else []) + self.argv

    # -- who is who ------------------------------------------------------------------------------

    @property
    def init_pid(self) -> int:
        """Host pid of comfy-init itself (PID 1 inside its namespace), once it has been exec'd."""
        if self._init_pid is None:
            self._init_pid = wait_until(self._find_init, timeout=10, interval=0.002)
        return self._init_pid

    signal_pid = init_pid

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
                argv = file.read().split(b"\0")
        except OSError:
            return None
        # Before exec it is still a copy of unshare, whose own arguments hold the marker too; and
        # that copy blocks SIGINT/SIGTERM until just before its exec (util-linux's unshare --fork),
        # so a signal sent to it then is pending, unblocked, and dropped by a PID 1 with no handler.
        exec_done = os.path.basename(argv[0]) != b"unshare" and any(self.marker in arg for arg in argv)
        return pid if exec_done else None

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
