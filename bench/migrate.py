"""Migration speed on one filesystem, one run each, as ratios measured in the same run.

    .venv/bin/python bench/migrate.py [--files 100000] [--size-gb 20] [--dense] [--dir /tmp/bench-migrate]

A compatibility-mode tree (DATA/comfy/{models,custom_nodes,user,output,input}) of `--files` files
holding `--size-gb` in all (sparse files unless `--dense`), page cache warm for every command:

    migrate_ratio      = comfy-init migrate --yes / `cp -a` of the same tree      (target <= 0.02)
    migrate_walk_ratio = comfy-init migrate --yes / a bare walk that lstats every entry
                         (the floor for the verification)                          (target <= 4)

and, without a target, `small_files_walk_ratio`: the same against a walk on a tree of as many
1 KiB files (a manifest hashes every file up to 64 KiB, so such trees cost more). `cp -a` copies
holes as holes: on sparse files it moves no data, which is why `--dense` exists.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"models/checkpoints": 0.4, "models/loras": 0.3, "custom_nodes": 0.15, "output": 0.1, "user": 0.05}


def make_tree(root, files, size, dense, small=False):
    per_file = 1024 if small else max(size // files, 1)
    chunk = os.urandom(1 << 20) if dense else None
    made = 0
    for folder, share in FOLDERS.items():
        count = int(files * share) if folder != "user" else files - made
        for n in range(count):
            directory = root / folder / f"d{n // 1000}"
            if n % 1000 == 0:
                directory.mkdir(parents=True, exist_ok=True)
            with open(directory / f"f{n}.bin", "wb") as file:
                if small:
                    file.write(b"x" * per_file)
                elif dense:
                    left = per_file
                    while left > 0:
                        file.write(chunk[:min(left, len(chunk))])
                        left -= len(chunk)
                else:
                    file.truncate(per_file)
        made += count
    (root / "input").mkdir(exist_ok=True)


def bare_walk(root):
    started, count, pending = time.monotonic(), 0, [str(root)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                entry.stat(follow_symlinks=False)
                count += 1
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
    return time.monotonic() - started, count


def timed(command):
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.monotonic() - started, done.stdout


def migrate(data):
    took, out = timed([sys.executable, "-m", "comfy_init", "migrate", "--data", str(data), "--yes", "--json"])
    return took, json.loads(out)["data"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--size-gb", type=float, default=20.0)
    parser.add_argument("--dense", action="store_true", help="real bytes instead of sparse files")
    parser.add_argument("--dir", default="/tmp/bench-migrate")
    args = parser.parse_args()
    base = Path(args.dir)
    shutil.rmtree(base, ignore_errors=True)
    size = int(args.size_gb * 2**30)
    data = base / "data"
    make_tree(data / "comfy", args.files, size, args.dense)
    subprocess.run(["sync"], check=True)
    cp_s, _ = timed(["cp", "-a", str(data / "comfy"), str(base / "copy")])
    shutil.rmtree(base / "copy")
    subprocess.run(["sync"], check=True)
    # The walk right before the migration: the same page and inode cache for both (cp -a of real
    # bytes evicts what an earlier walk warmed).
    walk_s, entries = bare_walk(data / "comfy")
    walk_s = min(walk_s, bare_walk(data / "comfy")[0])
    migrate_s, result = migrate(data)
    assert result["verified"]["difference_count"] == 0, result["verified"]
    small = base / "small" / "data"
    make_tree(small / "comfy", args.files, 0, False, small=True)
    small_walk_s = min(bare_walk(small / "comfy")[0], bare_walk(small / "comfy")[0])
    small_migrate_s, _ = migrate(small)
    figures = {
        "entries": entries, "apparent_gb": args.size_gb, "dense": args.dense,
        "walk_s": round(walk_s, 3), "cp_a_s": round(cp_s, 3), "migrate_s": round(migrate_s, 3),
        "migrate_ratio": round(migrate_s / cp_s, 4), "migrate_walk_ratio": round(migrate_s / walk_s, 2),
        "small_files_walk_ratio": round(small_migrate_s / small_walk_s, 2),
    }
    print(json.dumps(figures, indent=2))
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
