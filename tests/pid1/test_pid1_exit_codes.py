"""comfy-init leaves with ComfyUI's own exit status: codes 0-255 as they are, a signal N as 128+N."""

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.support.pid1 import ComfyInit
from tests.support.ports import free_port

pytestmark = [pytest.mark.pid1, pytest.mark.usefixtures("pid_namespace")]



@pytest.mark.parametrize("code", [0, 1, 2, 3, 42, 127, 128, 255])
def test_exit_code_passes_through(setup, launch, code):
    run = launch(setup.env(STANDIN_EXIT_CODE=code))
    status = run.wait(timeout=15)
    assert status == code, run.output()
    assert [e["code"] for e in setup.events("exit_code")] == [code], "exactly one ComfyUI run"
    assert setup.instance_id not in setup.registry()["claims"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGABRT, signal.SIGINT, signal.SIGKILL],
                         ids=lambda s: signal.Signals(s).name)
def test_signal_death_gives_128_plus_n(setup, launch, signum):
    run = launch(setup.env(STANDIN_EXIT_SIGNAL=int(signum)))
    status = run.wait(timeout=15)
    assert status == 128 + signum, run.output()
    assert f"ComfyUI exited with signal {int(signum)}" in run.stderr()


def test_every_exit_code_passes_through(setup, tmp_path):
    # A shell that exits at once stands in for ComfyUI: this checks comfy-init, not the stand-in.
    exiter = tmp_path / "exit-with.sh"
    exiter.write_text('#!/bin/sh\nexit "$EXIT_WITH"\n')
    exiter.chmod(0o755)

    def one(code):
        run = ComfyInit(setup.env(COMFY_INSTANCE_ID=f"code-{code}", COMFY_PORT=free_port(),
                                  COMFY_PYTHON=exiter, EXIT_WITH=code), tmp_path, name=f"code-{code}")
        try:
            return code, run.start().wait(timeout=60), run
        finally:
            run.kill()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1)) as pool:
        results = list(pool.map(one, range(256)))
    print(f"256 runs in {time.monotonic() - started:.1f} s")
    wrong = [(code, status) for code, status, _run in results if status != code]
    assert not wrong, f"(expected, got): {wrong}\n{results[wrong[0][0]][2].output()}"


def test_real_time_signal_death_gives_128_plus_n(setup, launch, tmp_path):
    # Python has no name for most real-time signals: the status and the log line must not need one.
    suicide = tmp_path / "kill-self.sh"
    suicide.write_text("#!/bin/sh\nkill -40 $$\nsleep 5\n")
    suicide.chmod(0o755)
    run = launch(setup.env(COMFY_PYTHON=suicide))
    assert run.wait(timeout=15) == 128 + 40, run.output()
    assert "ComfyUI exited with signal 40 (SIG40)" in run.stderr()
    assert "Traceback" not in run.output()
