"""The first instants of PID 1: the images start comfy-init through `env --block-signal=...`, so a
SIGTERM that arrives before Python has installed comfy-init's handlers is held pending, not
dropped by the kernel (which drops any signal to a PID 1 that has no handler for it).

Each round starts the image's ENTRYPOINT as PID 1 of a new namespace, waits only until the
signals are BLOCKED (env's first act), then sends SIGTERM at a random instant of the next 60 ms,
most of which Python spends starting up. Every round must end with exit 0, quickly; without the
block, most of these signals are lost and comfy-init goes on to start ComfyUI.
"""

import random
import re
import signal
import time
from pathlib import Path

import pytest

from comfy_init.pid1 import signals as intake
from tests.support.pid1 import ComfyInit, signal_set, status_field
from tests.support.processes import COMFY_INIT
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.pid1, pytest.mark.usefixtures("pid_namespace")]

DOCKERFILES = sorted((Path(__file__).resolve().parents[2] / "docker").glob("Dockerfile.*"))
ROUNDS = 12


def entrypoint_block_list(dockerfile):
    match = re.search(r'ENTRYPOINT \["env", "--block-signal=([A-Z0-9,]+)", "comfy-init", "run"\]',
                      dockerfile.read_text(encoding="utf-8"))
    return None if match is None else match.group(1)


def test_the_images_block_exactly_the_signals_comfy_init_handles():
    handled = {signal.Signals(s).name.removeprefix("SIG") for s in intake.STOP_SIGNALS + intake.FORWARDED_SIGNALS}
    lists = {path.name: entrypoint_block_list(path) for path in DOCKERFILES}
    lists.pop("Dockerfile.complete")  # FROM core: it inherits core's ENTRYPOINT
    assert lists and all(value is not None for value in lists.values()), lists
    assert all(set(value.split(",")) == handled for value in lists.values()), lists


def test_a_sigterm_in_the_first_instants_is_never_lost(setup, tmp_path):
    block = entrypoint_block_list(Path(DOCKERFILES[0].parent / "Dockerfile.core"))
    argv = ["env", f"--block-signal={block}", *COMFY_INIT]
    rng = random.Random(1234)
    for round_number in range(ROUNDS):
        run = ComfyInit(setup.env(COMFY_STOP_TIMEOUT="3"), tmp_path, argv=argv, marker=b"env",
                        name=f"first-{round_number}")
        run.start()
        try:
            wait_until(lambda: signal.SIGTERM in signal_set(status_field(run.init_pid, "SigBlk")),
                       timeout=10, interval=0.0005)
            time.sleep(rng.uniform(0, 0.06))
            sent = run.send(signal.SIGTERM)
            status = run.wait(timeout=15)
            assert status == 0, run.output()
            assert time.monotonic() - sent < 10
        finally:
            run.kill()
