"""ComfyUI starts with a clean slate: no blocked or ignored signals and only fds 0, 1 and 2,
whatever comfy-init itself inherited.

A ComfyUI started with SIGINT ignored never installs its KeyboardInterrupt handler and can then
only be killed, and a leaked fd keeps a pipe or a lock alive for ComfyUI's whole life.

COMFY_PYTHON points at a shell script standing where ComfyUI's Python would: it notes its signal
masks with builtins only (a command it forks would see the shell's mask of the moment of the
fork), then waits while the test lists its fds from outside (an `ls` run by the shell would list
the fds dash opens for the redirection and keeps across the fork), then execs the real Python.
"""

import os
import signal
import sys

import pytest
from tests.support.pid1 import signal_set, status_field
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.pid1, pytest.mark.usefixtures("pid_namespace")]

WRAPPER = """\
#!/bin/sh
state="$CHILD_STATE_FILE"
{
    while IFS= read -r line; do
        case "$line" in SigBlk:*|SigIgn:*) printf '%s\\n' "$line" ;; esac
    done < /proc/self/status
} > "$state.tmp"
mv "$state.tmp" "$state"
while [ ! -e "$state.go" ]; do sleep 0.02; done
exec "$REAL_PYTHON" "$@"
"""


@pytest.fixture
def wrapper(tmp_path):
    path = tmp_path / "record-state.sh"
    path.write_text(WRAPPER)
    path.chmod(0o755)
    return path


def _state_env(setup, wrapper, state_file):
    return setup.env(COMFY_PYTHON=wrapper, CHILD_STATE_FILE=state_file, REAL_PYTHON=sys.executable)


def _masks(path):
    """{'SigBlk': set, 'SigIgn': set} as the wrapper noted them."""
    masks = {}
    for line in path.read_text().splitlines():
        name, value = line.split(":", 1)
        masks[name] = signal_set(value.strip())
    return masks


def _fds(pid, wrapper):
    """{fd: target} of the waiting wrapper, but the fd on which the shell reads its own script."""
    fds = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        fds[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
    return {fd: target for fd, target in fds.items() if not (fd > 2 and target == str(wrapper))}


def _wrapper_pid(run, wrapper):
    for pid in run.processes():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                if str(wrapper).encode() in file.read():
                    return pid
        except OSError:
            continue
    return None


def _run_and_read(setup, launch, wrapper, state_file, **popen_kwargs):
    run = launch(_state_env(setup, wrapper, state_file), **popen_kwargs)
    wait_until(state_file.exists, timeout=15)
    fds = _fds(wait_until(lambda: _wrapper_pid(run, wrapper)), wrapper)
    (state_file.parent / (state_file.name + ".go")).touch()
    run.wait_ready()  # the real stand-in runs from the exec'd wrapper, and works
    run.send(signal.SIGTERM)
    assert run.wait(timeout=10) == 0, run.output()
    masks = _masks(state_file)
    return masks["SigBlk"], masks["SigIgn"], fds


def test_comfyui_starts_with_no_blocked_or_ignored_signals_and_fds_0_1_2(setup, launch, wrapper, tmp_path):
    blocked, ignored, fds = _run_and_read(setup, launch, wrapper, tmp_path / "state")
    assert blocked == set()
    assert ignored == set()
    assert sorted(fds) == [0, 1, 2], fds


def test_clean_state_even_when_comfy_init_inherits_a_dirty_one(setup, launch, wrapper, tmp_path):
    leaked_read, leaked_write = os.pipe()
    os.set_inheritable(leaked_read, True)

    def dirty():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a background job of a shell script
        signal.signal(signal.SIGTSTP, signal.SIG_IGN)
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGUSR1})

    try:
        run_state = {}

        def launch_and_check(env, **kwargs):
            run = launch(env, **kwargs)
            # The dirt really reached our child (unshare, which hands it on to comfy-init).
            run_state["ignored"] = signal_set(status_field(run.proc.pid, "SigIgn"))
            run_state["blocked"] = signal_set(status_field(run.proc.pid, "SigBlk"))
            return run

        blocked, ignored, fds = _run_and_read(setup, launch_and_check, wrapper, tmp_path / "state",
                                              preexec_fn=dirty, pass_fds=(leaked_read,))
    finally:
        os.close(leaked_read)
        os.close(leaked_write)

    assert {signal.SIGINT, signal.SIGTSTP, signal.SIGUSR2} <= run_state["ignored"]
    assert {signal.SIGHUP, signal.SIGUSR1} <= run_state["blocked"]
    assert blocked == set()
    assert ignored == set()
    assert sorted(fds) == [0, 1, 2], fds
