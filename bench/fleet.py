"""Benchmark: 8 instances started at once on one data tree, as real `comfy-init run` processes
with the stand-in ComfyUI, over several rounds.

    python bench/fleet.py [--count 8] [--rounds 20]

Each round starts `--count` comfy-init runs at the same moment (one instance id each, its own
port) and times until every one answers /system_stats; the baseline is one instance started
alone, measured in the same run (the median of three). While all of them run, the registry must
hold exactly one claim per instance, each naming the pid of the comfy-init that logged it; after a
graceful stop, none. Prints:

    fleet_ratio        = median time until all answer / median time one needs alone   (target <= 2.0)
    claims_lost        = claims missing while all ran, over every round                (target 0)
    claims_duplicated  = claims naming another run's pid, or a second generation       (target 0)

On a machine with fewer cores than instances, the start-ups (Python and the stand-in) compete for
the CPU: the ratio then measures the machine as much as comfy-init. It prints the core count.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from tests.support.http import get_json  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.processes import ComfyInitProcess, instance_env, read_registry  # noqa: E402
from tests.support.standin import make_checkout  # noqa: E402


def start_all(base: Path, app: Path, data: Path, count: int, round_no: int):
    runs = []
    for index in range(count):
        env = instance_env(instance_id=f"fleet-{index}", data=data, app=app, port=free_port())
        runs.append(ComfyInitProcess(env, base, f"r{round_no}-{index}"))
    started = time.monotonic()
    for run in runs:
        run.start()
    waiting = set(range(count))
    while waiting:
        for index in list(waiting):
            if runs[index].proc.poll() is not None:
                raise SystemExit(f"a run exited early:\n{runs[index].output()}")
            if _answers(runs[index].url + "/system_stats"):
                waiting.discard(index)
        time.sleep(0.005)
    return runs, time.monotonic() - started


def _answers(url):
    try:
        return get_json(url, timeout=0.2) is not None
    except OSError:  # not listening yet (URLError is an OSError)
        return False


def judge(runs, data):
    claims = read_registry(data)["claims"]
    lost = sum(1 for index in range(len(runs)) if f"fleet-{index}" not in claims)
    pids = {f"fleet-{index}": run.pid for index, run in enumerate(runs)}
    duplicated = sum(1 for key, record in claims.items() if record["pid"] != pids.get(key))
    return lost, duplicated


def stop_all(runs, data):
    for run in runs:
        run.send(signal.SIGTERM)
    for run in runs:
        run.wait(timeout=30)
    return len(read_registry(data)["claims"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    try:
        app = make_checkout(base / "app")
        alone = []
        for attempt in range(3):
            runs, took = start_all(base, app, base / f"alone-{attempt}", 1, attempt)
            alone.append(took)
            stop_all(runs, base / f"alone-{attempt}")
        data = base / "data"
        fleet, lost, duplicated, leftover = [], 0, 0, 0
        for round_no in range(args.rounds):
            runs, took = start_all(base, app, data, args.count, 100 + round_no)
            fleet.append(took)
            round_lost, round_duplicated = judge(runs, data)
            lost, duplicated = lost + round_lost, duplicated + round_duplicated
            leftover += stop_all(runs, data)
        print(f"cores={os.cpu_count()} count={args.count} rounds={args.rounds}")
        print(f"alone_s={statistics.median(alone):.3f} fleet_s={statistics.median(fleet):.3f} "
              f"fleet_max_s={max(fleet):.3f}")
        print(f"fleet_ratio={statistics.median(fleet) / statistics.median(alone):.2f} (target <= 2.0)")
        print(f"claims_lost={lost} claims_duplicated={duplicated} claims_left_after_stop={leftover} (targets 0)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
