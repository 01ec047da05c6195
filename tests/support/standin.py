"""The stand-in ComfyUI (tests/standin_comfyui): where it is, and copies that behave as a chosen release.

The stand-in as it lies in the repository is a 0.3.64 (plus `--enable-manager`, which some tests
use). `make_checkout(dest, release=...)` copies it and edits the copy's source the way the real
releases differ, so comfy-init's probe (which reads comfy/cli_args.py's text) and the stand-in's
own argparse both see that release:

- "0.3.12": before `--base-directory` and the database: both flags removed.
- "0.3.64": the last release checked by hand; `--cuda-device` takes one number.
- "0.38":   `--models-directory`, `--disable-assets`, `--enable-asset-hashing` declared,
            `--cuda-device` takes `0,1` or `all`; main.py then emulates that release's database
            lock (5 s wait, `ASSETS_STARTUP_FAILED: <kind>`, exit 1), the database default in the
            user directory with the legacy copy, and realpath containment of input/output/user.
"""

from __future__ import annotations

import shutil
from pathlib import Path

STANDIN_DIR = Path(__file__).resolve().parents[1] / "standin_comfyui"

# comfy-init detects a feature by finding the quoted flag in comfy/cli_args.py.
FEATURE_FLAGS = {
    "base_directory": '"--base-directory"',
    "database_url": '"--database-url"',
}

_CUDA_DEVICE_LIST = (
    'parser.add_argument("--cuda-device", type=str, default=None, metavar="DEVICE_ID", help="The ids '
    "of the cuda devices this instance will use, comma separated (0 or 0,1), or 'all'.\")\n")
_NEW_FLAGS = (
    'parser.add_argument("--models-directory", type=is_valid_directory, default=None, help="Set the '
    'models directory (must exist). Overrides the models folder of the base directory.")\n',
    'parser.add_argument("--disable-assets", action="store_true", help="Disable the assets system '
    '(database and the scan at start).")\n',
    'parser.add_argument("--enable-asset-hashing", action="store_true", help="Hash files when '
    'scanning assets.")\n',
)

# release -> (version string, flags removed, lines added, --cuda-device takes a list)
RELEASES = {
    "0.3.12": ("0.3.12-standin", ('"--base-directory"', '"--database-url"', '"--enable-manager"'), (), False),
    "0.3.64": ("0.3.64-standin", ('"--enable-manager"',), (), False),
    "0.38": ("0.38.1-standin", (), _NEW_FLAGS, True),
}


def make_checkout(dest: Path, *, base_directory: bool = True, database_url: bool = True,
                  release: str | None = None) -> Path:
    """Copy the stand-in to `dest`, as `release` (a key of RELEASES) when given; a feature set to
    False is removed, as in an old release.

    Removing a flag deletes its declaration line from the copy's comfy/cli_args.py, so the copy
    both looks old to comfy-init's detection and rejects the flag (argparse, exit 2).
    """
    dest = Path(dest)
    shutil.copytree(STANDIN_DIR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    wanted = {"base_directory": base_directory, "database_url": database_url}
    dropped = [FEATURE_FLAGS[name] for name, keep in wanted.items() if not keep]
    added, cuda_list = (), False
    if release is not None:
        version, removed, added, cuda_list = RELEASES[release]
        dropped += list(removed)
        (dest / "comfyui_version.py").write_text(
            f"# Version of the stand-in ComfyUI, emulating release {release}.\n__version__ = {version!r}\n",
            encoding="utf-8")
    cli_args = dest / "comfy" / "cli_args.py"
    lines = cli_args.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for line in lines:
        if any(flag in line for flag in dropped):
            continue
        kept.append(_CUDA_DEVICE_LIST if cuda_list and '"--cuda-device"' in line else line)
    cli_args.write_text("".join(kept) + "".join(added), encoding="utf-8")
    return dest
