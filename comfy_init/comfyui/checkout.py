"""A ComfyUI checkout: where its main.py is and which optional flags its release understands.

Probed by reading one source file (comfy/cli_args.py) and comfyui_version.py: no ComfyUI or torch
import, a few milliseconds on every container start. What each field means, and which releases
have it: comfy_init/comfyui/releases.py and docs/comfyui-releases.md.
"""

import os

from comfy_init.comfyui.releases import features_of
from comfy_init.errors import MissingPathError
from comfy_init.problems import Problem

# The flags' definitions live in comfy/cli_args.py in every ComfyUI release that has them.
CLI_ARGS_SOURCE = os.path.join("comfy", "cli_args.py")


class Checkout:
    """A ComfyUI checkout and the optional flags its release understands."""

    # base_directory ... asset_hashing: the release declares that flag (releases.FLAG_FEATURES);
    # cuda_device_list: its --cuda-device takes `0,1` and `all`, not only one number.
    __slots__ = ("path", "main_py", "version", "base_directory", "database_url", "user_directory",
                 "input_directory", "models_directory", "enable_manager", "disable_assets",
                 "asset_hashing", "cuda_device_list")

    def __init__(self, path, main_py, version, **features):
        self.path = path
        self.main_py = main_py
        self.version = version
        for name in self.__slots__[3:]:
            setattr(self, name, bool(features.get(name, False)))

    def declared(self):
        """The optional features this release has, as the names of the Checkout fields."""
        return [name for name in self.__slots__[3:] if getattr(self, name)]

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


def probe_checkout(app_dir):
    """Look at the checkout in `app_dir`; raise MissingPathError (66) when it has no main.py."""
    main_py = os.path.join(app_dir, "main.py")
    if not os.path.isfile(main_py):
        raise MissingPathError(Problem(
            "missing-path", f"COMFY_APP_DIRECTORY={app_dir!r}: no main.py there",
            fix="point COMFY_APP_DIRECTORY at the ComfyUI checkout (the folder that holds main.py), "
                "e.g. COMFY_APP_DIRECTORY=/opt/comfyui"))
    try:
        with open(os.path.join(app_dir, CLI_ARGS_SOURCE), encoding="utf-8", errors="replace") as file:
            flags_source = file.read()
    except OSError:
        flags_source = ""
    return Checkout(path=app_dir, main_py=main_py, version=_read_version(app_dir), **features_of(flags_source))


def _read_version(app_dir):
    try:
        with open(os.path.join(app_dir, "comfyui_version.py"), encoding="utf-8") as file:
            for line in file:
                if line.startswith("__version__"):
                    return line.split("=", 1)[1].strip().strip("\"'")
    except (OSError, UnicodeDecodeError):
        pass
    return None
