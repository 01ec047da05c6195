"""`comfy-init health` and `comfy-init status` must stay cheap, and dead instances must not slow status.

Builds one data tree of 20 instances: 5 answering (real `comfy-init run`s with the stand-in ComfyUI,
tests/standin_comfyui) and 15 that do not answer: claims written as this host's, their locks held by
a helper process, on ports where either nothing listens ("refused": the connection is refused at
once) or a socket accepts and never replies ("silent": every probe waits for its timeout). Times, as
whole processes, against `python -I -c pass` measured in the same run:

  health_ratio=<median `comfy-init health` of a running instance (claim, invariants, HTTP) / bare>  target <= 3
  status_ratio=<median `status --json` on the 20-instance tree, 15 refused / bare>                 target <= 15
  dead_cost=<(median status with the 15 silent - median with the 15 refused) / probe timeout>       target <= 1

so the 15 silent ones add at most one probe timeout in all, not one each. Every process it starts is
stopped before it exits, and the tree removed.

Usage: python bench/status.py [--runs N] [--timeout S] [--keep DIR]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir))  # the repository root: tests.support is shared

from comfy_init.layout import Layout  # noqa: E402
from comfy_init.ops.instances import create_instance  # noqa: E402
from comfy_init.store.clock import utc_now  # noqa: E402
from comfy_init.store.hostid import identity  # noqa: E402
from comfy_init.store.registry import Registry  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.processes import FOREIGN_PREFIXES, ComfyInitProcess, instance_env  # noqa: E402
from tests.support.registry_data import claim  # noqa: E402
from tests.support.standin import STANDIN_DIR  # noqa: E402

ANSWERING, SILENT = 5, 15
TARGETS = {"health_ratio": 3.0, "status_ratio": 15.0, "dead_cost": 1.0}
HOLD_LOCKS = """
import fcntl, sys
files = [open(path, "a") for path in sys.argv[1:]]
for f in files:
    fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def script():
    path = os.path.join(sysconfig.get_path("scripts"), "comfy-init")
    if not os.path.exists(path):
        sys.exit(f"{path} not found: pip install -e . first")
    return path


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}


def start_answering(root, processes):
    layout = Layout(root)
    for index in range(ANSWERING):
        instance_id = f"live-{index}"
        result = create_instance(layout, instance_id, variant="cpu", port=free_port())
        if result.exit_code != 0:
            raise RuntimeError(f"create {instance_id}: {result.problems}")
        env = instance_env(instance_id=instance_id, data=root, app=STANDIN_DIR, port=result.data["config"]["port"],
                           STANDIN_VRAM_TOTAL=8 * 2**30)
        processes.append(ComfyInitProcess(env, root, name=f"run-{instance_id}").start())
    for process in processes:
        process.wait_ready(timeout=60)
    return processes[0].env


def claim_silent(root, processes):
    """15 claims of this host with their locks held by a helper; returns their ports."""
    me, now, ports = identity(), utc_now(), []
    with Registry(Layout(root)).transaction() as document:
        for index in range(SILENT):
            port = free_port()
            ports.append(port)
            document["instances"][f"mute-{index:02d}"] = {"created_at": now, "claim_generation": 1}
            document["claims"][f"mute-{index:02d}"] = claim(
                host=me["host"], boot_id=me["boot_id"], container_id=me["container_id"], renewed_at=now,
                since=now, port=port, listen="127.0.0.1", holds_lock=True)
    paths = [Layout(root).lock_path(f"mute-{index:02d}") for index in range(SILENT)]
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCKS, *paths], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    processes.append(holder)
    if holder.stdout.readline() != "locked\n":
        raise RuntimeError("the lock holder did not lock")
    return ports


def check_status(root, want_answering):
    result = subprocess.run([script(), "status", "--json", "--data", root], env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    rows = json.loads(result.stdout)["data"]["instances"]
    running = [r for r in rows if r["state"] == "running here"]
    answering = [r for r in running if r["health"] == "ok"]
    if len(rows) != ANSWERING + SILENT or len(running) != len(rows) or len(answering) != want_answering:
        raise RuntimeError(f"status saw {len(rows)} rows, {len(running)} running, {len(answering)} answering:\n"
                           f"{result.stdout[-2000:]}")


def time_once(argv, env):
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return time.perf_counter() - started


def median_seconds(argv, env, runs):
    time_once(argv, env)  # warm-up
    return statistics.median(time_once(argv, env) for _ in range(runs))


def silent_sockets(ports):
    """Sockets that accept connections (the kernel does) and never answer."""
    sockets = []
    for port in ports:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(1024)
        sockets.append(listener)
    return sockets


def stop_all(processes):
    for process in processes:
        if isinstance(process, ComfyInitProcess):
            if process.proc is not None and process.proc.poll() is None:
                process.send(signal.SIGTERM)
        elif process.poll() is None:
            process.stdin.close()
    for process in processes:
        proc = process.proc if isinstance(process, ComfyInitProcess) else process
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def measure(root, health_env, ports, runs, timeout):
    bare_argv = [sys.executable, "-I", "-c", "pass"]
    status_argv = [script(), "status", "--json", "--timeout", f"{timeout:g}", "--data", root]
    bare = median_seconds(bare_argv, {}, runs)
    health = median_seconds([script(), "health"], health_env, runs)
    refused = median_seconds(status_argv, clean_env(), runs)
    sockets = silent_sockets(ports)
    try:
        check_status(root, ANSWERING)
        silent = median_seconds(status_argv, clean_env(), max(3, runs // 3))
    finally:
        for listener in sockets:
            listener.close()
    bare = min(bare, median_seconds(bare_argv, {}, runs))  # a second round: drift shows in both alike
    return {"bare": bare, "health": health, "refused": refused, "silent": silent}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--timeout", type=float, default=1.0, help="status's probe timeout (its default: 1)")
    parser.add_argument("--keep", help="build the tree here and keep it")
    options = parser.parse_args()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, _frame: sys.exit(128 + signum))
    workdir = options.keep or tempfile.mkdtemp(prefix="comfy-init-status-")
    root = os.path.join(workdir, "data")
    processes = []
    try:
        health_env = start_answering(root, processes)
        ports = claim_silent(root, processes)
        check_status(root, ANSWERING)
        if subprocess.run([script(), "health"], env=health_env, capture_output=True).returncode != 0:
            raise RuntimeError("health of a running instance failed")
        t = measure(root, health_env, ports, options.runs, options.timeout)
        figures = {"health_ratio": t["health"] / t["bare"], "status_ratio": t["refused"] / t["bare"],
                   "dead_cost": (t["silent"] - t["refused"]) / options.timeout}
        print(f"runs={options.runs}")
        print(f"probe_timeout_s={options.timeout:g}")
        for name in ("bare", "health", "refused", "silent"):
            label = {"bare": "bare_python", "refused": "status_15_refused", "silent": "status_15_silent"}.get(name, name)
            print(f"{label}_ms={t[name] * 1000:.1f}")
        for name, value in figures.items():
            print(f"{name}={value:.2f} (target <= {TARGETS[name]:g})")
        ok = all(figures[name] <= TARGETS[name] for name in TARGETS)
        print(f"ok={str(ok).lower()}")
        return 0 if ok else 1
    finally:
        stop_all(processes)
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
