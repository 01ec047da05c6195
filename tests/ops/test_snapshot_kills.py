"""`snapshot restore` and `snapshot create` killed with SIGKILL at random instants, 200 runs in all:
the instance directory is always exactly the old tree or exactly the new one, and every archive
that looks complete (a listed name) verifies."""

import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from comfy_init.layout import Layout
from comfy_init.ops.snapshot import catalog
from comfy_init.ops.snapshot.scan import scan
from tests.support.snapshots import whole_tree

REPO = Path(__file__).resolve().parents[2]
ID = "kill-1"
RUNS_PER_WORKER = 50  # x 2 kinds x 2 workers = 200 killed runs


def comfy_init(data, *args):
    return [sys.executable, "-m", "comfy_init", *args, "--data", str(data)]


def finished(data, *args):
    done = subprocess.run(comfy_init(data, *args, "--json"), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def fill(root, seed):
    rng = random.Random(seed)
    for n in range(30):
        path = root / "custom_nodes" / f"node-{n % 5}" / f"file-{n}-{seed}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(4000))
    (root / "custom_nodes" / "node-0" / "big.bin").write_bytes(rng.randbytes(3_000_000))
    (root / "user" / "default").mkdir(parents=True, exist_ok=True)
    (root / "user" / "default" / "comfy.settings.json").write_text(f'{{"seed": {seed}}}')
    link = root / "custom_nodes" / "node-1" / "link"
    if os.path.lexists(link):
        os.unlink(link)
    link.symlink_to(f"file-1-{seed}.py")


def killed_at_random(argv, low, high, rng):
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(low, high))
    process.send_signal(signal.SIGKILL)
    process.wait()


def timed(argv):
    started = time.monotonic()
    subprocess.run(argv, cwd=REPO, check=True, capture_output=True, timeout=60)
    return time.monotonic() - started


def prepare(data):
    finished(data, "instance", "create", ID)
    root = data / "instances" / ID
    fill(root, 1)
    old = finished(data, "snapshot", "create", ID)
    fill(root, 2)
    for stale in (root / "custom_nodes").glob("node-*/file-*-1.py"):
        stale.unlink()
    new = finished(data, "snapshot", "create", ID)
    import json

    names = [json.loads(old)["data"]["name"], json.loads(new)["data"]["name"]]
    trees = []
    for name in names:
        finished(data, "snapshot", "restore", name, "--yes")
        trees.append(whole_tree(root))
    assert trees[0] != trees[1]
    return root, names, trees


def worker(tmp_path, seed):
    rng = random.Random(seed)
    data = tmp_path / f"data-{seed}"
    root, names, trees = prepare(data)
    start = timed(comfy_init(data, "snapshot", "list"))  # the interpreter and imports alone
    full = timed(comfy_init(data, "snapshot", "restore", names[0], "--yes"))
    seen = {0: 0, 1: 0}
    for _ in range(RUNS_PER_WORKER):
        killed_at_random(comfy_init(data, "snapshot", "restore", rng.choice(names), "--yes"),
                         start * 0.7, full * 1.1, rng)
        tree = whole_tree(root)
        assert tree in trees, "the instance is neither the old tree nor the new one"
        seen[trees.index(tree)] += 1
    full = timed(comfy_init(data, "snapshot", "create", ID))
    known = {s.archive for s in catalog.snapshots_of(Layout(str(data)), ID)}
    for _ in range(RUNS_PER_WORKER):
        killed_at_random(comfy_init(data, "snapshot", "create", ID), start * 0.7, full * 1.1, rng)
        for snapshot in catalog.snapshots_of(Layout(str(data)), ID):
            if snapshot.archive not in known:
                scan(snapshot.archive)  # raises if a complete-looking archive is not complete
                known.add(snapshot.archive)
    return seen


def test_kill_9_at_random_instants_leaves_old_or_new_and_no_partial_snapshot(tmp_path):
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda seed: worker(tmp_path, seed), (11, 12)))
    # Both outcomes happen: kills land before and after the swap.
    assert sum(r[0] for r in results) and sum(r[1] for r in results), results
    assert time.monotonic() - started < 150
