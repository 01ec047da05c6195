"""The stand-in ComfyUI (tests/standin_comfyui): where it is, and copies that look like older releases."""

from __future__ import annotations

import shutil
from pathlib import Path

STANDIN_DIR = Path(__file__).resolve().parents[1] / "standin_comfyui"

# comfy-init detects a feature by finding the quoted flag in comfy/cli_args.py.
FEATURE_FLAGS = {
    "base_directory": '"--base-directory"',
    "database_url": '"--database-url"',
}

def make_checkout(dest: Path, *, base_directory: bool = True, database_url: bool = True) -> Path:
    """Copy the stand-in to `dest`; a feature set to False is removed, as in an old release.

    Removing a flag deletes its declaration line from the copy's comfy/cli_args.py, so the copy
    both looks old to comfy-init's detection and rejects the flag (argparse, exit 2).
    """
    dest = Path(dest)
    shutil.copytree(STANDIN_DIR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    wanted = {"base_directory": base_directory, "database_url": database_url}
    dropped = [FEATURE_FLAGS[name] for name, keep in wanted.items() if not keep]
    if dropped:
        cli_args = dest / "comfy" / "cli_args.py"
        lines = cli_args.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not any(flag in line for flag in dropped)]
        cli_args.write_text("".join(kept), encoding="utf-8")
    return dest
