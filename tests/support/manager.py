"""ComfyUI-Manager 4 for the tests: release copies of the stand-in, and the REAL package from PyPI.

The real `comfyui-manager` package is installed into a venv of its own (not the test venv: there,
COMFY_MANAGER=auto would find it and every other test's ComfyUI would be started with
--enable-manager). The venv is built once per pin and Python, with pip from PyPI (CI reaches PyPI),
under $COMFY_INIT_TEST_CACHE (default ~/.cache/comfy-init-tests) and reused after that.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.standin import make_checkout

# What ComfyUI's manager_requirements.txt pins for the release the stand-in copy emulates (one
# file, also read by docker/build-test-images.sh for the manager4 test image).
REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "docker" / "fixtures" / "manager_requirements.txt"
MANAGER_REQUIREMENT = next(line.strip() for line in REQUIREMENTS_FILE.read_text().splitlines()
                           if line.strip() and not line.startswith("#"))
# Not among the package's own requirements: ComfyUI brings it (the package imports it at once).
COMFYUI_PROVIDES = ["aiohttp"]
ENABLE_MANAGER = '"--enable-manager"'


def release_checkout(dest: Path, *, manager4: bool) -> Path:
    """A stand-in copy like a ComfyUI release with Manager 4 (--enable-manager declared and a
    manager_requirements.txt) or like an older one (neither)."""
    dest = make_checkout(dest)
    cli_args = dest / "comfy" / "cli_args.py"
    lines = cli_args.read_text(encoding="utf-8").splitlines(keepends=True)
    if manager4:
        assert any(ENABLE_MANAGER in line for line in lines), "the stand-in declares --enable-manager"
        shutil.copyfile(REQUIREMENTS_FILE, dest / "manager_requirements.txt")
    else:
        cli_args.write_text("".join(line for line in lines if ENABLE_MANAGER not in line), encoding="utf-8")
    return dest


def real_manager_python() -> Path:
    """The python of a venv that has the real comfyui-manager package (built on first use)."""
    cache = Path(os.environ.get("COMFY_INIT_TEST_CACHE") or Path.home() / ".cache" / "comfy-init-tests")
    version = MANAGER_REQUIREMENT.split("==")[1]
    venv = cache / f"comfyui-manager-{version}-py{sys.version_info.major}{sys.version_info.minor}"
    python = venv / "bin" / "python"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions at once build it once
        if not (venv / "complete").exists():
            _build(venv)
    return python


def _build(venv: Path) -> None:
    # Built where it stays (a venv's scripts name its folder); "complete" is written last, so a
    # build cut short is built again.
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                             "--disable-pip-version-check", MANAGER_REQUIREMENT, *COMFYUI_PROVIDES],
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"pip could not install {MANAGER_REQUIREMENT} from PyPI into {venv}:\n"
                           f"{result.stdout}{result.stderr}")
    (venv / "complete").write_text(MANAGER_REQUIREMENT + "\n")
