"""Start-up cost must not depend on how much the models weigh.

Builds data trees holding 100,000 and 1,000 model files (empty files in nested folders), then times
the whole process `comfy-init run --dry-run` for an instance on each, and the REAL start on the 100k
tree (tree check, registry, claim, port check, spawn, release) with a "ComfyUI" that exits at once
(COMFY_PYTHON=/bin/true), against `python -I -c pass` measured in the same run. Prints:

  boot_ratio=<median dry run on the 100k tree / median bare python>          target <= 3.0
  real_start_ratio=<median real start on the 100k tree / median bare python> target <= 5.0
  size_effect=<median on the 100k tree / median on the 1k tree>              target <= 1.10
  venv_start_ratio=<median dry run on the 100k tree with COMFY_VENV=on and an existing, matching
                   instance environment / median bare python>                 target <= 3.5

and, for the instance environment (docs/venv.md), in the same run: the real start that creates the
environment, the real start that finds it, and `python -m venv --without-pip` of the same kind alone
(these three start the stand-in ComfyUI with the environment's python: informational).

Usage: python bench/boot.py [--runs N] [--keep DIR]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDIN = os.path.join(ROOT, "tests", "standin_comfyui")
FOLDERS = ("checkpoints", "loras", "vae", "controlnet", "embeddings", "upscale_models", "clip", "unet")


def build_tree(root, files):
    """`files` empty model files spread over nested folders, plus a prepared instance."""
    models = os.path.join(root, "shared", "models")
    per_leaf = 100
    for index in range(files):
        folder = FOLDERS[index % len(FOLDERS)]
        leaf = os.path.join(models, folder, f"set-{index // (per_leaf * len(FOLDERS)):04d}", f"part-{index % 7}")
        if index % (per_leaf * len(FOLDERS)) < len(FOLDERS) * 7:
            os.makedirs(leaf, exist_ok=True)
        open(os.path.join(leaf, f"model-{index:06d}.safetensors"), "wb").close()
    env = environment(root)
    subprocess.run(command(), env=env, check=True, capture_output=True)  # dry run: validates the env
    # Prepare the tree for real so the timed dry runs measure the steady state ("already in place").
    subprocess.run(command(real=True), env=dict(env, COMFY_PYTHON="/bin/true"), check=True, capture_output=True)


def environment(root):
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COMFY_MULTI_INSTANCE": "true",
            "COMFY_INSTANCE_ID": "bench-1", "COMFY_DATA_DIRECTORY": root,
            "COMFY_APP_DIRECTORY": STANDIN, "COMFY_DEVICE": "cpu"}


def command(real=False):
    # The console script the image runs, from this interpreter's scripts directory.
    script = os.path.join(sysconfig.get_path("scripts"), "comfy-init")
    if not os.path.exists(script):
        sys.exit(f"{script} not found: pip install -e . first")
    return [script, "run"] if real else [script, "run", "--dry-run"]


def make_image(root):
    """A stand-in for the image's /opt/venv: a venv of this interpreter that sees its packages
    (a .pth, as instance environments do) and has a build file."""
    image = os.path.join(root, "image")
    if not os.path.exists(os.path.join(image, "comfy-init-build.json")):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", image], check=True)
        site = subprocess.run([os.path.join(image, "bin", "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              check=True, capture_output=True, text=True).stdout.strip()
        with open(os.path.join(site, "_bench_host.pth"), "w") as file:
            file.write(sysconfig.get_path("purelib") + "\n")
        subprocess.run([os.path.join(image, "bin", "python"), "-I", os.path.join(ROOT, "comfy_init", "venv", "buildinfo.py"),
                        "--comfyui-dir", STANDIN, "--write", os.path.join(image, "comfy-init-build.json")], check=True)
    return os.path.join(image, "bin", "python")


def venv_numbers(root, runs):
    """(dry run with a matching environment on the 100k tree, real start creating it, real start
    finding it, python -m venv alone), medians in seconds."""
    python = make_image(os.path.dirname(root))
    env = dict(environment(root), COMFY_PYTHON=python, COMFY_VENV="on", STANDIN_EXIT_CODE="0")
    subprocess.run(command(real=True), env=env, check=True, capture_output=True)  # makes the environment
    dry = median_seconds(command(), env, runs)
    found = median_seconds(command(real=True), env, runs)
    venv = os.path.join(root, "instances", "bench-1", "venv")
    creating, plain = [], []
    for index in range(runs):
        shutil.rmtree(venv)
        started = time.perf_counter()
        subprocess.run(command(real=True), env=env, check=True, capture_output=True)
        creating.append(time.perf_counter() - started)
        target = os.path.join(os.path.dirname(root), f"plain-venv-{index}")
        started = time.perf_counter()
        subprocess.run([python, "-m", "venv", "--without-pip", target], check=True)
        plain.append(time.perf_counter() - started)
        shutil.rmtree(target)
    return dry, statistics.median(creating), found, statistics.median(plain)


def median_seconds(argv, env, runs):
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm-up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", help="build the trees here and keep them")
    options = parser.parse_args()
    workdir = options.keep or tempfile.mkdtemp(prefix="comfy-init-boot-")
    try:
        big, small = os.path.join(workdir, "big"), os.path.join(workdir, "small")
        for root, files in ((big, 100_000), (small, 1_000)):
            if not os.path.exists(os.path.join(root, "meta")):
                started = time.perf_counter()
                build_tree(root, files)
                print(f"built {root} with {files} model files in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        bare = median_seconds([sys.executable, "-I", "-c", "pass"], {}, options.runs)
        on_big = median_seconds(command(), environment(big), options.runs)
        on_small = median_seconds(command(), environment(small), options.runs)
        real = median_seconds(command(real=True), dict(environment(big), COMFY_PYTHON="/bin/true"), options.runs)
        venv_dry, venv_create, venv_found, plain_venv = venv_numbers(big, options.runs)
        # Interleave a second round so drift on a busy machine shows up in both numbers alike.
        bare = min(bare, median_seconds([sys.executable, "-I", "-c", "pass"], {}, options.runs))
        print(f"runs={options.runs}")
        print(f"bare_python_ms={bare * 1000:.1f}")
        print(f"dry_run_100k_ms={on_big * 1000:.1f}")
        print(f"dry_run_1k_ms={on_small * 1000:.1f}")
        print(f"real_start_100k_ms={real * 1000:.1f}")
        print(f"boot_ratio={on_big / bare:.2f}")
        print(f"real_start_ratio={real / bare:.2f}")
        print(f"size_effect={on_big / on_small:.3f}")
        print(f"venv_dry_run_100k_ms={venv_dry * 1000:.1f}")
        print(f"venv_start_ratio={venv_dry / bare:.2f}")
        print(f"venv_real_start_creating_ms={venv_create * 1000:.1f}")
        print(f"venv_real_start_existing_ms={venv_found * 1000:.1f}")
        print(f"python_m_venv_without_pip_ms={plain_venv * 1000:.1f}")
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
