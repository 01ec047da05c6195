"""`comfy-init instance list` and `instance create` must stay cheap however many instances a tree has.

Builds two data trees: one with 100 configured instances (`ops.instances.create_instance`, ports
from a free high range) of which 10 run, and one with 10 instances of which 1 runs. A running
instance is a real `comfy-init run` (COMFY_INSTANCE_ID set, COMFY_LISTEN=127.0.0.1, its registered
port) with the stand-in ComfyUI (tests/standin_comfyui), so `list` judges its claim, sees its lock
held and probes its /system_stats. Times the whole process `comfy-init instance list --json --data D`
on each tree and `comfy-init instance create <fresh id> --port P --data D` on the 100-instance tree,
against `python -I -c pass` measured in the same run. Prints:

  list_ratio=<median list on the 100-instance tree / median bare python>           target <= 15
  list_size_effect=<median list on the 100-instance tree / on the 10-instance tree> target <= 2.0
  create_ratio=<median create of a fresh id on the 100-instance tree / bare>        target <= 10

Every process it starts is stopped (SIGTERM, then SIGKILL) before it exits, and the trees removed.

Usage: python bench/manage.py [--runs N] [--keep DIR]
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir))  # the repository root: tests.support is shared

from comfy_init.comfyui.endpoint import port_in_use  # noqa: E402
from comfy_init.layout import Layout  # noqa: E402
from comfy_init.ops.instances import create_instance  # noqa: E402
from tests.support.processes import FOREIGN_PREFIXES, ComfyInitProcess, instance_env  # noqa: E402
from tests.support.standin import STANDIN_DIR  # noqa: E402

PORT_RANGE = (41000, 49000)  # far above the default 8188-8287 and below the usual ephemeral range
VARIANTS = ("core", "complete", "cpu")
TARGETS = {"list_ratio": 15.0, "list_size_effect": 2.0, "create_ratio": 10.0}


def script():
    """The console script users run, from this interpreter's scripts directory."""
    path = os.path.join(sysconfig.get_path("scripts"), "comfy-init")
    if not os.path.exists(path):
        sys.exit(f"{path} not found: pip install -e . first")
    return path


class Ports:
    """Ports of PORT_RANGE that nothing holds (on any address) when handed out, each once."""

    def __init__(self):
        self.next = PORT_RANGE[0]

    def take(self):
        while self.next < PORT_RANGE[1]:
            port, self.next = self.next, self.next + 1
            if not port_in_use("0.0.0.0", port):
                return port
        raise RuntimeError(f"no free port left in {PORT_RANGE[0]}-{PORT_RANGE[1]}")


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}


def build_tree(root, count, running, ports, processes):
    """`count` configured instances under `root`, the first `running` of them started."""
    layout = Layout(root)
    started = []
    for index in range(count):
        instance_id = f"bench-{index:03d}"
        result = create_instance(layout, instance_id, variant=VARIANTS[index % len(VARIANTS)], port=ports.take())
        if result.exit_code != 0:
            raise RuntimeError(f"create {instance_id}: {result.lines} {result.problems}")
        if index < running:
            port = result.data["config"]["port"]
            env = instance_env(instance_id=instance_id, data=root, app=STANDIN_DIR, port=port)
            process = ComfyInitProcess(env, root, name=f"run-{instance_id}")
            processes.append(process)
            started.append(process.start())
    for process in started:
        process.wait_ready(timeout=30)
    return layout


def check_list(root, count, running):
    """One `instance list --json`: every instance there, the running ones running and healthy."""
    result = subprocess.run([script(), "instance", "list", "--json", "--data", root], env=clean_env(),
                            capture_output=True, text=True, timeout=60, check=True)
    rows = json.loads(result.stdout)["data"]["instances"]
    healthy = [r for r in rows if (r["state"], r["health"]) == ("running here", "ok")]
    if len(rows) != count or len(healthy) != running:
        raise RuntimeError(f"{root}: {len(rows)} instances ({count} expected), {len(healthy)} running and "
                           f"healthy ({running} expected):\n{result.stdout[-2000:]}")


def time_once(argv, env):
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return time.perf_counter() - started


def median_seconds(argv, env, runs):
    time_once(argv, env)  # warm-up
    return statistics.median(time_once(argv, env) for _ in range(runs))


def median_create(root, ports, runs):
    """Median of `instance create` of a fresh id (a new one each run) on the tree at `root`."""
    env = clean_env()
    samples = []
    for index in range(runs + 1):
        argv = [script(), "instance", "create", f"fresh-{index:03d}", "--variant", "cpu",
                "--port", str(ports.take()), "--data", root]
        seconds = time_once(argv, env)
        if index:  # the first one is the warm-up
            samples.append(seconds)
    return statistics.median(samples)


def stop_all(processes):
    for process in processes:
        if process.proc is not None and process.proc.poll() is None:
            process.send(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for process in processes:
        if process.proc is None:
            continue
        try:
            process.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()  # comfy-init, everything below it


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", help="build the trees here and keep them")
    options = parser.parse_args()
    # A SIGTERM (or a closed terminal) unwinds through `finally`: the instances are stopped.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, _frame: sys.exit(128 + signum))
    workdir = options.keep or tempfile.mkdtemp(prefix="comfy-init-manage-")
    processes = []
    ports = Ports()
    try:
        big, small = os.path.join(workdir, "big"), os.path.join(workdir, "small")
        for root, count, running in ((big, 100, 10), (small, 10, 1)):
            if os.path.exists(root):
                sys.exit(f"{root} exists: --keep needs an empty folder")
            started = time.perf_counter()
            build_tree(root, count, running, ports, processes)
            check_list(root, count, running)
            print(f"built {root}: {count} instances, {running} running, in "
                  f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
        bare_argv = [sys.executable, "-I", "-c", "pass"]
        bare = median_seconds(bare_argv, {}, options.runs)
        on_big = median_seconds([script(), "instance", "list", "--json", "--data", big], clean_env(), options.runs)
        on_small = median_seconds([script(), "instance", "list", "--json", "--data", small], clean_env(), options.runs)
        create = median_create(big, ports, options.runs)
        # A second round of the baseline, so drift on a busy machine shows up in both numbers alike.
        bare = min(bare, median_seconds(bare_argv, {}, options.runs))
        check_list(big, 100 + options.runs + 1, 10)  # the creates added instances; the 10 still run
        figures = {"list_ratio": on_big / bare, "list_size_effect": on_big / on_small, "create_ratio": create / bare}
        print(f"runs={options.runs}")
        print(f"bare_python_ms={bare * 1000:.1f}")
        print(f"list_100_ms={on_big * 1000:.1f}")
        print(f"list_10_ms={on_small * 1000:.1f}")
        print(f"create_ms={create * 1000:.1f}")
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
