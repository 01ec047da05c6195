"""Benchmark: how long `comfy-init run` takes to leave after SIGTERM, with the stand-in ComfyUI.

    python bench/stop.py [--runs 20] [--pid1]

Each run starts `comfy-init run` (a plain child of this script, or with --pid1 PID 1 of a new PID
namespace through `unshare --pid --fork --mount-proc`, which needs root), waits until ComfyUI's
/system_stats answers, sends SIGTERM to comfy-init and times its exit. The stand-in logs the moment
its graceful stop began (graceful_exit event, wall clock), and comfy-init's stderr is read through
a pipe with each line timed on arrival, so "ComfyUI exited with ..." marks when comfy-init reaped
it. That splits the total:

    forward_s          SIGTERM -> the stand-in's KeyboardInterrupt handler ran (comfy-init's
                       forwarding as SIGINT, and the stand-in noticing it)
    comfyui_exit_s     SIGTERM -> comfy-init reaped ComfyUI (ComfyUI's whole shutdown included)
    after_reap_s       reaped -> comfy-init exited (claim release, interpreter exit): comfy-init's
                       own cost, with forward_s

Target: comfy-init's part under 0.5 s plus ComfyUI's own shutdown. Prints key=value lines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir))  # the repository root: tests.support is shared

from tests.support.ports import free_port  # noqa: E402
from tests.support.processes import FOREIGN_PREFIXES  # noqa: E402
from tests.support.standin import make_checkout  # noqa: E402


def wait_ready(url, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"comfy-init exited with {proc.returncode} before ComfyUI was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def init_pid(proc, pid1, timeout=10.0):
    """comfy-init's own pid: the child of unshare with --pid1, else the process itself."""
    if not pid1:
        return proc.pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children", encoding="ascii") as file:
                children = file.read().split()
            if children:
                return int(children[0])
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError("no PID 1 found under unshare")


def graceful_exit_time(log_path):
    try:
        with open(log_path, encoding="utf-8") as file:
            for line in file:
                event = json.loads(line)
                if event["event"] == "graceful_exit":
                    return event["time"]
    except (OSError, ValueError):
        pass
    return None


def one_run(root, app, index, pid1):
    port = free_port()
    log_path = os.path.join(root, f"events-{index}.jsonl")
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    env.update(COMFY_MULTI_INSTANCE="true", COMFY_INSTANCE_ID="bench-stop",
               COMFY_DATA_DIRECTORY=os.path.join(root, "data"), COMFY_APP_DIRECTORY=app,
               COMFY_PORT=str(port), COMFY_LISTEN="127.0.0.1", COMFY_DEVICE="cpu",
               STANDIN_LOG_FILE=log_path)
    command = [sys.executable, "-m", "comfy_init", "run"]
    if pid1:
        command = ["unshare", "--pid", "--fork", "--mount-proc", *command]
    proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    lines = []  # (monotonic time of arrival, line)

    def read_stderr():
        for line in proc.stderr:
            lines.append((time.monotonic(), line.decode(errors="replace")))

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        wait_ready(f"http://127.0.0.1:{port}/system_stats", proc)
        target = init_pid(proc, pid1)
        sent_wall = time.time()
        sent = time.monotonic()
        os.kill(target, signal.SIGTERM)
        status = proc.wait(timeout=30)
        exited = time.monotonic()
        total = exited - sent
        reader.join(timeout=10)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if status != 0:
        raise RuntimeError(f"run {index}: comfy-init exited {status}:\n" + "".join(l for _, l in lines))
    graceful = graceful_exit_time(log_path)
    forward = None if graceful is None else graceful - sent_wall
    reaped = [t for t, line in lines if "ComfyUI exited with" in line]
    comfyui_exit = reaped[0] - sent if reaped else None
    after_reap = exited - reaped[0] if reaped else None
    return total, forward, comfyui_exit, after_reap


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pid1", action="store_true", help="run comfy-init as PID 1 (unshare, root)")
    args = parser.parse_args(argv)

    root = tempfile.mkdtemp(prefix="bench-stop-")
    try:
        app = str(make_checkout(os.path.join(root, "app")))
        totals, forwards, comfyui_exits, after_reaps = [], [], [], []
        for index in range(args.runs):
            total, forward, comfyui_exit, after_reap = one_run(root, app, index, args.pid1)
            totals.append(total)
            if forward is not None:
                forwards.append(forward)
            if comfyui_exit is not None:
                comfyui_exits.append(comfyui_exit)
                after_reaps.append(after_reap)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"mode={'pid1 (unshare --pid --fork --mount-proc)' if args.pid1 else 'plain child process'}")
    print(f"cpus={os.cpu_count()}")
    print(f"runs={len(totals)}")
    print(f"stop_median_s={statistics.median(totals):.4f}")
    print(f"stop_min_s={min(totals):.4f}")
    print(f"stop_max_s={max(totals):.4f}")
    own = None
    if forwards:
        print(f"forward_median_s={statistics.median(forwards):.4f}")
    if comfyui_exits:
        print(f"comfyui_exit_median_s={statistics.median(comfyui_exits):.4f}")
        print(f"after_reap_median_s={statistics.median(after_reaps):.4f}")
        print(f"after_reap_max_s={max(after_reaps):.4f}")
        own = statistics.median(totals) - statistics.median(comfyui_exits) + (
            statistics.median(forwards) if forwards else 0.0)
        print(f"comfy_init_own_median_s={own:.4f}")
    print("target_s=0.5 (comfy-init's own part; ComfyUI's shutdown comes on top)")
    print(f"ok={str(own is not None and own < 0.5).lower()}")
    return 0 if own is not None and own < 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
