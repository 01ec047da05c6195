"""Signals to PID 1 reach ComfyUI: HUP, USR1 and USR2 as they are, every stop signal as SIGINT.

SIGINT is ComfyUI's graceful stop (KeyboardInterrupt); SIGTERM would kill it without cleanup. The
"ComfyUI" here is a shell script (COMFY_PYTHON) that writes down each signal it traps.
"""

import signal

import pytest
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.pid1, pytest.mark.usefixtures("pid_namespace")]

TRAPPER = """\
#!/bin/sh
out="$SIGNAL_LOG"
trap 'echo HUP >> "$out"' HUP
trap 'echo USR1 >> "$out"' USR1
trap 'echo USR2 >> "$out"' USR2
trap 'echo TERM >> "$out"; exit 3' TERM
trap 'echo QUIT >> "$out"; exit 3' QUIT
trap 'echo INT >> "$out"; exit 0' INT
echo ready >> "$out"
while :; do sleep 0.05; done
"""


@pytest.fixture
def trapper(setup, tmp_path, launch):
    script = tmp_path / "trapper.sh"
    script.write_text(TRAPPER)
    script.chmod(0o755)
    log = tmp_path / "signals.log"
    run = launch(setup.env(COMFY_PYTHON=script, SIGNAL_LOG=log))

    def received():
        return log.read_text().split() if log.exists() else []

    wait_until(lambda: received()[:1] == ["ready"], timeout=15)
    return run, received


def _wait_for(received, names):
    try:
        wait_until(lambda: received()[1:] == names, timeout=5)
    except TimeoutError:
        raise AssertionError(f"ComfyUI received {received()[1:]}, expected {names}") from None


def test_hup_usr1_usr2_are_forwarded_and_sigterm_arrives_as_sigint(trapper):
    run, received = trapper
    expected = []
    for signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        run.send(signum)
        expected.append(signal.Signals(signum).name[3:])
        _wait_for(received, expected)  # one at a time: a shell runs traps in its own order

    run.send(signal.SIGTERM)
    assert run.wait(timeout=10) == 0, run.output()
    assert received()[1:] == expected + ["INT"]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGQUIT], ids=lambda s: signal.Signals(s).name)
def test_every_stop_signal_arrives_as_sigint(trapper, stop):
    run, received = trapper
    run.send(stop)
    assert run.wait(timeout=10) == 0, run.output()
    assert received()[1:] == ["INT"]
