"""Model verification speed against the plainest way to do the same work, in one run, as ratios.

    .venv/bin/python bench/models.py [--size-gb 2] [--files 100000] [--instances 50] [--dir /tmp/bench-models]

    verify_ratio      = first `models verify` (empty hash cache) of --size-gb of model files
                        / a plain BLAKE3 loop over the same files (1 MiB reads, one thread)  (target <= 1.2)
    verify_vs_sha256  = the same verify / `sha256sum` of the files                           (printed)
    reverify_ratio    = `models verify` of --files unchanged small model files (hash cache full)
                        / a bare lstat walk of them (os.scandir + lstat per file)          (target <= 2)
    duplicates_ratio  = find_duplicates over --instances instances and the --files files
                        / the same bare lstat walk (what `comfy-init check` calls)         (target <= 3)

Every timed step runs in this one process, with a warm page cache and a warm dentry cache
for both sides (the hashed files are read once first; the walk runs once before it is timed);
each side's best of --repeat runs is kept (the walk, the re-verify and find_duplicates
alternate, so load from elsewhere on the machine hits them alike). CPU-time ratios (this process
and its children, user + system) are printed beside the wall-time ones: on a shared machine they
say more about the work done than the wall clock. The CLI's own wall times (`python -m comfy_init models
verify`, interpreter start and imports included) are printed beside them. The hashed files are
written once (real random bytes) under --dir and reused; their mtimes are set an hour back, as
models on disk are, so no file is looked at twice as a possible download in progress.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import blake3  # noqa: E402

from comfy_init.layout import MODEL_FOLDERS, Layout  # noqa: E402
from comfy_init.ops.models.duplicates import find_duplicates  # noqa: E402
from comfy_init.ops.models.verify import verify_models  # noqa: E402
from tests.support.models import make_tree, safetensors_bytes, safetensors_prefix, write  # noqa: E402

HOUR_AGO = time.time() - 3600


def _cpu():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(function, *args, **kwargs):
    """(wall seconds, CPU seconds of this process and its children, value)."""
    started, cpu = time.perf_counter(), _cpu()
    value = function(*args, **kwargs)
    return time.perf_counter() - started, _cpu() - cpu, value


def best(repeat, function, *args, **kwargs):
    """The least wall and the least CPU time of `repeat` runs."""
    runs = [timed(function, *args, **kwargs)[:2] for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def make_big_files(layout, size):
    """--size-gb in a handful of files of real random bytes (kept between runs)."""
    plan = [("checkpoints/model-%d.safetensors" % n, size // 8) for n in range(6)]
    plan += [("loras/lora-%d.bin" % n, size // 16) for n in range(4)]
    paths = []
    for relative, length in plan:
        path = os.path.join(layout.shared_models, relative)
        paths.append(path)
        if os.path.exists(path) and os.path.getsize(path) == length:
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as stream:
            if path.endswith(".safetensors"):  # a sound header in front of random data
                data_bytes = length - len(safetensors_prefix(length))
                stream.write(safetensors_prefix(data_bytes))
            left = length - stream.tell()
            while left:
                chunk = os.urandom(min(left, 16 << 20))
                stream.write(chunk)
                left -= len(chunk)
        os.utime(path, (HOUR_AGO, HOUR_AGO))
    return paths


def plain_blake3(paths):
    for path in paths:
        hasher = blake3.blake3()
        with open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                hasher.update(chunk)
        hasher.hexdigest()


def bare_walk(top):
    count, stack = 0, [top]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    count += 1
    return count


def make_many_files(layout, files):
    """--files small model files (a quarter of them safetensors) over the model folders."""
    per_dir = 100
    for n in range(files):
        folder = MODEL_FOLDERS[n % len(MODEL_FOLDERS)]
        name = f"m-{n}.safetensors" if n % 4 == 0 else f"m-{n}.pt"
        data = safetensors_bytes(64, seed=n % 200) if n % 4 == 0 else n.to_bytes(8, "little") * 8
        path = write(os.path.join(layout.shared_models, folder, f"d{n // (per_dir * len(MODEL_FOLDERS))}", name), data)
        os.utime(path, (HOUR_AGO, HOUR_AGO))


def cli_verify(data):
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "comfy_init", "models", "verify", "--data", data, "--json"],
                          cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    document = json.loads(done.stdout)
    return seconds, document


def hashing_part(root, size, repeat):
    layout = Layout(str(root / "hash"))
    os.makedirs(layout.meta, exist_ok=True)
    paths = make_big_files(layout, size)
    total = sum(map(os.path.getsize, paths))
    subprocess.run(["cat", *paths], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

    def first_verify():
        if os.path.exists(layout.model_hash_cache):
            os.unlink(layout.model_hash_cache)
        result = verify_models(layout)
        assert result.exit_code == 0 and result.data["hashed_bytes"] == total, result.data

    plain, plain_cpu = best(repeat, plain_blake3, paths)
    sha, sha_cpu = best(repeat, subprocess.run, ["sha256sum", *paths], stdout=subprocess.DEVNULL, check=True)
    verify, verify_cpu = best(repeat, first_verify)
    os.unlink(layout.model_hash_cache)
    cli_first, document = cli_verify(layout.data)
    assert document["exit_code"] == 0, document
    return {"hashed_gib": round(total / 2**30, 2), "hashed_files": len(paths), "plain_blake3_s": round(plain, 3),
            "sha256sum_s": round(sha, 3), "verify_s": round(verify, 3), "cli_first_verify_s": round(cli_first, 3),
            "verify_ratio": round(verify / plain, 3), "verify_vs_sha256": round(verify / sha, 3),
            "verify_cpu_ratio": round(verify_cpu / plain_cpu, 3)}


def walking_part(root, files, instances, repeat):
    data = root / "many"
    marker = data / f".made-{files}-{instances}"
    if not marker.exists():
        shutil.rmtree(data, ignore_errors=True)
        layout = make_tree(data, *[f"bench-{n}" for n in range(instances)])
        make_many_files(layout, files)
        for n in range(0, instances, 10):  # a few instances keep node models of their own (no copies)
            own = write(f"{layout.instance(f'bench-{n}').custom_nodes}/node/models/own-{n}.pt", b"own" * (n + 1))
            os.utime(own, (HOUR_AGO, HOUR_AGO))
        marker.write_text("")
    layout = Layout(str(data))
    first = verify_models(layout)
    assert first.exit_code == 0 and first.data["shared_files"] == files, first.data

    def reverify():
        result = verify_models(layout)
        assert result.data["hashed_files"] == 0, result.data

    bare_walk(layout.shared_models)  # the dentry and inode caches warm for both sides
    walks, reverifies, finds = [], [], []
    for _ in range(repeat):  # alternating, so a burst of load elsewhere hits both sides alike
        walks.append(timed(bare_walk, layout.shared_models)[:2])
        reverifies.append(timed(reverify)[:2])
        finds.append(timed(find_duplicates, layout)[:2])
    (walk, walk_cpu), (again, again_cpu), (dups, dups_cpu) = (
        (min(r[0] for r in runs), min(r[1] for r in runs)) for runs in (walks, reverifies, finds))
    cli_again, _ = cli_verify(layout.data)
    return {"files": files, "instances": instances, "bare_lstat_walk_s": round(walk, 3),
            "reverify_s": round(again, 3), "find_duplicates_s": round(dups, 3),
            "cli_reverify_s": round(cli_again, 3), "reverify_ratio": round(again / walk, 3),
            "duplicates_ratio": round(dups / walk, 3), "reverify_cpu_ratio": round(again_cpu / walk_cpu, 3),
            "duplicates_cpu_ratio": round(dups_cpu / walk_cpu, 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default="/tmp/bench-models")
    args = parser.parse_args()
    root = Path(args.dir)
    figures = {**hashing_part(root, int(args.size_gb * 2**30), args.repeat),
               **walking_part(root, args.files, args.instances, args.repeat)}
    print(json.dumps(figures, indent=2))
    targets = {"verify_ratio": 1.2, "reverify_ratio": 2.0, "duplicates_ratio": 3.0}
    for key, target in targets.items():
        print(f"{key} = {figures[key]} (target <= {target}): {'ok' if figures[key] <= target else 'MISSED'}")
    return 0 if all(figures[k] <= t for k, t in targets.items()) else 1


if __name__ == "__main__":
    sys.exit(main())
