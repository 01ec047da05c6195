"""Signal intake for PID 1, installed before anything slow is imported.

Python as PID 1 ignores every signal it has no handler for, and a signal that arrives before its
handler exists is lost. So `install()` runs first thing in `comfy-init run`: each signal is only
recorded in `pending` and wakes the supervisor's loop through a self-pipe; what to do with it is
decided there. Handlers (never SIG_IGN) are used even for the signals we ignore, because a
handled signal is reset to its default when ComfyUI is exec'd, while an ignored one would stay
ignored in ComfyUI (and a ComfyUI started with SIGINT ignored can never stop gracefully).
"""

import collections
import os
import signal

# Stop signals: ComfyUI gets SIGINT, its graceful stop, for each of these.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
# Forwarded unchanged to ComfyUI's process group.
FORWARDED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)
# Received and dropped: a PID 1 with no terminal must not be stopped by job control.
DROPPED_SIGNALS = (signal.SIGTTIN, signal.SIGTTOU)

pending = collections.deque()
_wakeup_read = None
_wakeup_write = None


def _record(signum, _frame):
    pending.append(signum)


def install():
    """Start recording signals; reset any inherited blocked mask and SIG_IGN dispositions."""
    global _wakeup_read, _wakeup_write
    if _wakeup_read is not None:
        return
    _wakeup_read, _wakeup_write = os.pipe()  # close-on-exec: ComfyUI never sees them
    os.set_blocking(_wakeup_read, False)
    os.set_blocking(_wakeup_write, False)
    signal.set_wakeup_fd(_wakeup_write, warn_on_full_buffer=False)
    handled = STOP_SIGNALS + FORWARDED_SIGNALS + DROPPED_SIGNALS + (signal.SIGCHLD,)
    for signum in handled:
        signal.signal(signum, _record)
    # Whatever our parent blocked or ignored must not reach ComfyUI through us.
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    for signum in signal.valid_signals():
        # Python itself ignores SIGPIPE and SIGXFSZ (writes then fail with an error instead);
        # subprocess restores both to their defaults in ComfyUI.
        if signum in handled or signum in (signal.SIGKILL, signal.SIGSTOP, signal.SIGPIPE, signal.SIGXFSZ):
            continue
        try:
            if signal.getsignal(signum) == signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # signals reserved by the C library


def wakeup_fd():
    return _wakeup_read


def wake():
    """Wake the supervisor's loop from another thread."""
    try:
        os.write(_wakeup_write, b"\0")
    except BlockingIOError:
        pass  # the pipe is full: the loop is going to wake anyway


def drain_wakeups():
    try:
        while os.read(_wakeup_read, 512):
            pass
    except BlockingIOError:
        pass


def take_pending():
    """Return and forget the signals received so far, oldest first."""
    taken = []
    while pending:
        taken.append(pending.popleft())  # popleft is atomic against a handler appending
    return taken


def stop_pending():
    """True when a stop signal has arrived and not been taken yet (for waits before ComfyUI runs)."""
    return any(signum in STOP_SIGNALS for signum in list(pending))
