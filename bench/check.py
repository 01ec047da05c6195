"""`comfy-init check` on a big tree must cost about what looking at every entry once costs.

Builds a data tree of 50 configured instances (`ops.instances.create_instance`) and 100,000 model
files: 98,000 in shared/models (spread over ComfyUI's model folders, 100 files a subfolder) and 40
per instance in custom_nodes/<node>/models (half of them the size of a shared file, as copies
would be). Files are sparse (ftruncate): sizes are real, no bytes are written. Times, in this one
run and on the same (warm) tree, a bare walk that lstats every entry (os.scandir, never following
a link) and `ops.check.run.check_data` (every checker of the table, whatever is plugged in).
Prints:

  walk_s=<bare walk>  check_s=<check>
  check_ratio=<check / bare walk>          target <= 3

Usage: python bench/check.py [--keep DIR]
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir))

from comfy_init.layout import MODEL_FOLDERS, Layout  # noqa: E402
from comfy_init.ops.check.run import check_data  # noqa: E402
from comfy_init.ops.instances import create_instance  # noqa: E402

INSTANCES = 50
MODEL_FILES = 100_000
PER_INSTANCE = 40
PER_FOLDER = 100
TARGET = 3.0


def sparse_file(path, size):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def build_tree(root, rng):
    layout = Layout(root)
    for index in range(INSTANCES):
        result = create_instance(layout, f"bench-{index:02d}", port=41000 + index)
        if result.exit_code != 0:
            raise RuntimeError(f"create bench-{index:02d}: {[p.line() for p in result.problems]}")
    shared_count = MODEL_FILES - INSTANCES * PER_INSTANCE
    sizes = []
    for number in range(shared_count):
        if number % PER_FOLDER == 0:
            folder = os.path.join(layout.model_folder(MODEL_FOLDERS[number // PER_FOLDER % len(MODEL_FOLDERS)]),
                                  f"set-{number // PER_FOLDER:04d}")
            os.mkdir(folder)
        size = rng.randrange(1 << 10, 1 << 30)
        sizes.append(size)
        sparse_file(os.path.join(folder, f"model-{number:06d}.safetensors"), size)
    small = [size for size in sizes if size < 1 << 20] or [4096]
    for index in range(INSTANCES):
        models = os.path.join(layout.instance(f"bench-{index:02d}").custom_node("bench-node"), "models")
        os.makedirs(models)
        for number in range(PER_INSTANCE):
            size = rng.choice(small) if number % 2 else rng.randrange(1 << 30, 1 << 31)
            sparse_file(os.path.join(models, f"copy-{number:02d}.safetensors"), size)
    return layout


def bare_walk(root):
    """lstat every entry of the tree once, never following a link: the floor of any full look."""
    count, stack = 0, [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                count += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return count, info


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - start, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", metavar="DIR", help="build the tree in DIR and keep it")
    args = parser.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix="comfy-init-bench-check-")
    data = os.path.join(root, "data")
    try:
        build_s, layout = timed(build_tree, data, random.Random(7))
        bare_walk(data)  # warm: both timings below read a cached tree
        walk_s, (entries, _) = timed(bare_walk, data)
        check_s, result = timed(check_data, layout)
        recheck_s, _ = timed(check_data, layout)  # the model hash cache now knows every candidate
        print(f"tree: {INSTANCES} instances, {MODEL_FILES} model files, {entries} entries (built in {build_s:.1f} s)")
        print(f"checks: {', '.join(result.data['checks'])}; findings: {result.data['findings']} (exit {result.exit_code})")
        print(f"walk_s={walk_s:.3f}  check_s={check_s:.3f}")
        ratio = check_s / walk_s
        print(f"check_ratio={ratio:.2f}          target <= {TARGET:g}{'' if ratio <= TARGET else '  MISSED'}"
              "   (first check: it hashes the copies whose size a shared file has)")
        print(f"recheck_s={recheck_s:.3f}  recheck_ratio={recheck_s / walk_s:.2f}   (the same check again: stat only)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
