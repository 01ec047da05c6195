"""PID 1: start ComfyUI, hand it every signal, reap every zombie, and leave with its exit status.

Modelled on tini: one verb-named function per job and a short main loop. The loop sleeps on the
self-pipe that signal handlers and helper threads write to, so it reacts at once to a signal, a
child's exit or a lost claim, and wakes at least once a second to reap orphans re-parented to it.

This module owns every exit status: nothing else may call wait on a child (a Popen.wait racing
waitpid(-1) turns a child's exit 3 into 0). Popen is used only to start the process.
"""

import os
import select
import signal
import subprocess
import threading
import time

from comfy_init import log
from comfy_init.pid1 import signals
from comfy_init.pid1.output import OutputCopier

PR_SET_CHILD_SUBREAPER = 36
REAP_INTERVAL = 1.0
# After ComfyUI exits by itself, what is left of its process group gets this long after SIGTERM.
LEFTOVER_GRACE = 3.0
READY_POLL_INTERVAL = 0.5
# After ComfyUI is gone, how long its last output may take to arrive through the pipes.
OUTPUT_GRACE = 1.0


def signal_name(signum):
    """SIGTERM, SIGKILL...; real-time signals have no name in Python: SIG40."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"


class ChildSpec:
    """How to start ComfyUI: command, environment and the user to run it as. `output`, when given,
    is called with (fd, bytes) for every chunk ComfyUI writes to its stdout (1) or stderr (2),
    after the chunk was passed on to ours (pid1.output); without it ComfyUI writes to our fds."""

    def __init__(self, command, env, cwd, *, user=None, group=None, extra_groups=None, output=None):
        self.command = command
        self.env = env
        self.cwd = cwd
        self.user = user
        self.group = group
        self.extra_groups = extra_groups
        self.output = output


class Supervisor:
    def __init__(self, spec, *, stop_timeout, ready_url=None, reboot_marker=None, claim_lost=None,
                 judge_exit=None):
        self.spec = spec
        # judge_exit(status) -> another status, or None: ComfyUI exiting by itself may mean more
        # than its code says (its output told why); never asked after a stop we requested.
        self.judge_exit = judge_exit
        self.stop_timeout = stop_timeout
        self.ready_url = ready_url
        self.reboot_marker = reboot_marker  # ComfyUI-Manager asks for a restart by creating it
        self.claim_lost = claim_lost or threading.Event()
        self.child = None
        self.child_pgid = None
        self.child_status = None
        self.stop_reason = None
        self.kill_deadline = None
        self.ready = False  # set by the readiness thread once /system_stats answered
        self.copier = None

    # -- the jobs -----------------------------------------------------------------------------

    def spawn(self):
        """Start ComfyUI in its own process group; return None, or 126/127 when it cannot start."""
        copier = OutputCopier(self.spec.output) if self.spec.output is not None else None
        stdout, stderr = copier.open() if copier is not None else (None, None)
        try:
            self.child = subprocess.Popen(
                self.spec.command, env=self.spec.env, cwd=self.spec.cwd,
                stdout=stdout, stderr=stderr,
                process_group=0,      # signals go to ComfyUI and everything it starts
                close_fds=True,       # only fds 0-2 cross over
                restore_signals=True,  # SIGPIPE and SIGXFSZ back to their defaults
                user=self.spec.user, group=self.spec.group, extra_groups=self.spec.extra_groups)
        except FileNotFoundError as error:
            _abandon(copier)
            log.error(f"cannot start ComfyUI: {error.filename or self.spec.command[0]} not found")
            return 127
        except (PermissionError, OSError) as error:
            _abandon(copier)
            log.error(f"cannot start ComfyUI: {error}")
            return 126
        if copier is not None:
            copier.started()
        self.copier = copier
        self.child_pgid = self.child.pid
        self.child_status = None
        self.ready = False
        self._give_terminal()
        log.info(f"started ComfyUI: pid {self.child.pid}, command: {' '.join(self.spec.command)}")
        if self.ready_url:
            threading.Thread(target=self._announce_ready, args=(self.child.pid,), daemon=True).start()
        return None

    def forward_signal(self, signum):
        """Stop signals become SIGINT (ComfyUI's graceful stop); others go to the group as they are."""
        if signum in signals.STOP_SIGNALS:
            self.begin_stop(f"received {signal_name(signum)}")
        elif signum in signals.FORWARDED_SIGNALS:
            self._signal_group(signum)

    def begin_stop(self, reason):
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        self.kill_deadline = time.monotonic() + self.stop_timeout
        log.info(f"{reason}: stopping ComfyUI (SIGINT, SIGKILL after {self.stop_timeout:g} s)")
        self._signal_group(signal.SIGINT)

    def reap_zombies(self):
        """Collect every exited child, ours or orphans handed to us; note ComfyUI's status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.child is not None and pid == self.child.pid:
                self.child_status = status
                self.child.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting

    def kill_leftovers(self):
        """ComfyUI is gone: SIGTERM what is left of its group, SIGKILL after LEFTOVER_GRACE."""
        if not self._group_alive():
            return
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + LEFTOVER_GRACE
        while self._group_alive() and time.monotonic() < deadline:
            self.wait_for_event(0.05)
            self.reap_zombies()
        if self._group_alive():
            self._signal_group(signal.SIGKILL)
            while self._group_alive() and time.monotonic() < deadline + 1.0:
                self.wait_for_event(0.05)
                self.reap_zombies()

    def wait_for_event(self, timeout):
        try:
            select.select([signals.wakeup_fd()], [], [], max(0.0, timeout))
        except InterruptedError:
            pass
        signals.drain_wakeups()

    # -- the loop -----------------------------------------------------------------------------

    def run(self):
        """Supervise until ComfyUI is gone for good; return the exit status for the container."""
        if self._stop_already_requested():
            log.info("stop requested before ComfyUI started: not starting it")
            return 0
        self._forget_stale_reboot_request()
        failed = self.spawn()
        if failed is not None:
            return failed
        while True:
            self.wait_for_event(self._next_timeout())
            for signum in signals.take_pending():
                self.forward_signal(signum)
            self.reap_zombies()
            if self.claim_lost.is_set() and self.stop_reason is None:
                self.begin_stop("the claim on this instance was taken over")
            if self.child_status is not None:
                self.kill_leftovers()
                if self.copier is not None:
                    self.copier.finish(OUTPUT_GRACE)
                if self._restart_requested():
                    failed = self.spawn()
                    if failed is not None:
                        return failed
                    continue
                return self._exit_status()
            if self.kill_deadline is not None and time.monotonic() >= self.kill_deadline:
                log.warning(f"ComfyUI did not stop within {self.stop_timeout:g} s: SIGKILL")
                self._signal_group(signal.SIGKILL)
                self.kill_deadline = None

    # -- helpers ------------------------------------------------------------------------------

    def _stop_already_requested(self):
        early = signals.take_pending()
        stop = [s for s in early if s in signals.STOP_SIGNALS]
        if stop:
            self.stop_reason = f"received {signal_name(stop[0])}"
        return bool(stop)

    def _next_timeout(self):
        timeout = REAP_INTERVAL
        if self.kill_deadline is not None:
            timeout = min(timeout, self.kill_deadline - time.monotonic())
        return timeout

    def _forget_stale_reboot_request(self):
        # A marker left by an earlier life of this instance must not turn a normal exit into a restart.
        if self.reboot_marker is not None and os.path.lexists(self.reboot_marker):
            self._remove_reboot_marker()

    def _remove_reboot_marker(self):
        try:
            os.unlink(self.reboot_marker)
            return True
        except OSError as error:
            log.warning(f"cannot remove ComfyUI-Manager's restart request {self.reboot_marker}: "
                        f"{error.strerror}; not restarting")
            return False

    def _restart_requested(self):
        if self.reboot_marker is None or self.stop_reason is not None:
            return False
        if os.waitstatus_to_exitcode(self.child_status) != 0 or not os.path.lexists(self.reboot_marker):
            return False
        if not self._remove_reboot_marker():
            return False
        log.info("ComfyUI-Manager asked for a restart: starting ComfyUI again")
        return True

    def _exit_status(self):
        code = os.waitstatus_to_exitcode(self.child_status)
        status = 128 - code if code < 0 else code
        how = f"signal {-code} ({signal_name(-code)})" if code < 0 else f"code {code}"
        if self.stop_reason is not None and (code == -signal.SIGINT or (code == 1 and not self.ready)):
            # Our SIGINT reached ComfyUI before its Python could turn it into a graceful stop (it
            # dies of the signal, or exits 1 when it lands inside start-up): that is the stop we
            # asked for, not a failure.
            log.info(f"ComfyUI was stopped while starting up ({how}); comfy-init exits 0")
            return 0
        judged = self.judge_exit(status) if self.judge_exit is not None and self.stop_reason is None else None
        if judged is not None:
            log.info(f"ComfyUI exited with {how}: it refused to start (see below); comfy-init exits {judged}")
            return judged
        log.info(f"ComfyUI exited with {how}; comfy-init exits {status}")
        return status

    def _give_terminal(self):
        # With a TTY (docker run -it), ComfyUI's own process group must be the terminal's foreground
        # group, or its first read of stdin stops it with SIGTTIN.
        # ComfyUI may read before we get here: it is then stopped by SIGTTIN, and becoming the
        # foreground group does not wake it. SIGCONT does (and is harmless when it runs).
        try:
            if os.isatty(0):
                os.tcsetpgrp(0, self.child_pgid)
                self._signal_group(signal.SIGCONT)
        except OSError:
            pass

    def _signal_group(self, signum):
        if self.child_pgid is None:
            return
        try:
            os.killpg(self.child_pgid, signum)
        except ProcessLookupError:
            pass

    def _group_alive(self):
        if self.child_pgid is None:
            return False
        try:
            os.killpg(self.child_pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _announce_ready(self, pid):
        import urllib.request  # only in this thread, after ComfyUI has been started

        while self.child is not None and self.child.pid == pid and self.child_status is None:
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as response:
                    if response.status == 200:
                        self.ready = True
                        log.info(f"ComfyUI is ready: {self.ready_url} answered (pid {pid})")
                        return
            except Exception:  # not listening yet; any error means "not ready"
                pass
            time.sleep(READY_POLL_INTERVAL)


def _abandon(copier):
    if copier is not None:
        copier.abandon()


def become_subreaper():
    """Ask the kernel to hand us ComfyUI's orphans (we are not PID 1). True on success."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
