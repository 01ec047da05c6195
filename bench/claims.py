"""Benchmark: N instances claimed at the same moment on one data tree.

    python bench/claims.py [--count 32] [--data DIR]

Acquire-level on purpose: each of N processes (forked from this one) builds its configuration and
calls comfy_init.store.claims.acquire on its own instance id with its own Registry on the shared
meta/ folder, exactly what `comfy-init run` does before it starts ComfyUI, without the cost of N
Python start-ups and N ComfyUIs, which would measure process start-up instead of the claim. The
processes meet at a barrier and claim at once; while all of them hold their claims the registry
is checked (N claims, unique tokens, each the claimer's pid and generation 1); then all release,
and the registry must still list N instances, each with claim_generation 1 and no claim.

Two rounds, each on a fresh data tree: "cold", where every process builds the registry's schema
validator on its first read (jsonschema import and schema compile, as every `comfy-init run` does
once), and "warm", where the validator was built before the fork, so only the claim itself is
timed: reads, flock queueing, fsynced writes. Keys of the warm round start with warm_.

Prints key=value lines; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from comfy_init.store import claims  # noqa: E402
from comfy_init.boot.config import load_config  # noqa: E402
from comfy_init.layout import Layout  # noqa: E402
from comfy_init.store.registry import Registry  # noqa: E402


def instance_id(index: int) -> str:
    return f"bench-{index:03d}"


def claimer(index, data_dir, barrier, results, release):
    """One process: wait for the others, claim, report, hold until told, release, report."""
    try:
        config = load_config({
            "COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": instance_id(index),
            "COMFY_DATA_DIRECTORY": data_dir, "COMFY_PORT": str(20000 + index),
            "COMFY_LISTEN": "127.0.0.1",
        })
        registry = Registry(config.layout)
        barrier.wait()
        started = time.time()
        claim = claims.acquire(registry, config.instance_id, port=config.port, listen=config.listen,
                               lease=config.claim_lease)
        claimed = time.time()
        results.put(("claimed", index, os.getpid(), started, claimed, claim.record["token"],
                     claim.generation))
        release.wait()
        release_started = time.time()
        claim.release()
        results.put(("released", index, os.getpid(), release_started, time.time(), None, None))
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which fails the run
        results.put(("error", index, os.getpid(), 0.0, 0.0, f"{type(error).__name__}: {error}", None))


def percentile(values, fraction):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def collect(results, count, kind, timeout=120.0):
    got, errors = {}, []
    deadline = time.monotonic() + timeout
    while len(got) + len(errors) < count:
        item = results.get(timeout=max(0.1, deadline - time.monotonic()))
        if item[0] == "error":
            errors.append(item)
        elif item[0] == kind:
            got[item[1]] = item
    return got, errors


def bench(count, data_dir, warm, prefix=""):
    """One round on `data_dir`; print its key=value lines; return the problems found."""
    if warm:
        from comfy_init.store import registry as registry_module
        registry_module._validator()  # built here, inherited by every forked claimer
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(count)
    results = context.Queue()
    release = context.Event()
    workers = [context.Process(target=claimer, args=(i, data_dir, barrier, results, release))
               for i in range(count)]
    problems = []
    claimed, released = {}, {}
    try:
        for worker in workers:
            worker.start()
        claimed, errors = collect(results, count, "claimed")
        problems += [f"instance {instance_id(e[1])}: {e[5]}" for e in errors]

        # Everyone holds a claim now: look at the registry as a third party would.
        held = Registry(Layout(data_dir)).load()
        tokens = [c[5] for c in claimed.values()]
        if len(set(tokens)) != len(tokens):
            problems.append("two processes got the same claim token")
        for index, (_, _, pid, _, _, token, generation) in claimed.items():
            record = held["claims"].get(instance_id(index))
            if record is None:
                problems.append(f"claim of {instance_id(index)} lost while held")
            elif (record["token"], record["pid"], record["generation"]) != (token, pid, 1) or generation != 1:
                problems.append(f"claim of {instance_id(index)} is not the claimer's: {record}")
        if len(held["claims"]) != count:
            problems.append(f"{len(held['claims'])} claims in the registry while {count} are held")

        release.set()
        released, errors = collect(results, len(claimed), "released")
        problems += [f"instance {instance_id(e[1])} release: {e[5]}" for e in errors]
    finally:
        release.set()
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()

    final = Registry(Layout(data_dir)).load()
    generations = {i: final["instances"].get(instance_id(i), {}).get("claim_generation") for i in range(count)}
    lost = [instance_id(i) for i, generation in generations.items() if generation is None]
    wrong = [instance_id(i) for i, generation in generations.items() if generation not in (None, 1)]
    if lost:
        problems.append(f"instances missing from the registry: {lost}")
    if wrong:
        problems.append(f"instances with claim_generation != 1: {wrong}")
    if final["claims"]:
        problems.append(f"claims left after every release: {sorted(final['claims'])}")

    def out(key, value):
        print(f"{prefix}{key}={value}")

    latencies = [c[4] - c[3] for c in claimed.values()]
    release_latencies = [r[4] - r[3] for r in released.values()]
    out("instances", count)
    out("claimed", len(claimed))
    out("claims_unique", str(len(set(c[5] for c in claimed.values())) == len(claimed)).lower())
    out("registry_instances", len(final["instances"]))
    out("registry_generation_1", sum(1 for g in generations.values() if g == 1))
    out("lost", len(lost))
    out("revision", final["revision"])
    if claimed:
        out("claim_wall_s", f"{max(c[4] for c in claimed.values()) - min(c[3] for c in claimed.values()):.4f}")
        out("claim_latency_p50_s", f"{percentile(latencies, 0.50):.4f}")
        out("claim_latency_p95_s", f"{percentile(latencies, 0.95):.4f}")
        out("claim_latency_max_s", f"{max(latencies):.4f}")
    if released:
        out("release_wall_s", f"{max(r[4] for r in released.values()) - min(r[3] for r in released.values()):.4f}")
        out("release_latency_p95_s", f"{percentile(release_latencies, 0.95):.4f}")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--data", help="folder for the data trees (default: a new temporary one)")
    args = parser.parse_args(argv)

    root = args.data or tempfile.mkdtemp(prefix="bench-claims-")
    print("mode=acquire-level (forked processes, comfy_init.store.claims.acquire on a shared data tree)")
    print(f"cpus={os.cpu_count()}")
    problems = bench(args.count, os.path.join(root, "cold"), warm=False)
    problems += [f"warm: {p}" for p in bench(args.count, os.path.join(root, "warm"), warm=True, prefix="warm_")]
    print(f"ok={str(not problems).lower()}")
    for problem in problems:
        print(f"problem={problem}")
    if not args.data:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
