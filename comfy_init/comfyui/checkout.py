"""A ComfyUI checkout: where its main.py is and which optional flags its release understands.

Probed by reading one source file (comfy/cli_args.py) and comfyui_version.py: no ComfyUI or torch
import, a few milliseconds on every container start.
"""

import os

from comfy_init.errors import MissingPathError
from comfy_init.problems import Problem

# The flags' definitions live in comfy/cli_args.py in every ComfyUI release that has them.
CLI_ARGS_SOURCE = os.path.join("comfy", "cli_args.py")


class Checkout:
    """A ComfyUI checkout and the optional flags its release understands."""

    __slots__ = ("path", "main_py", "base_directory", "database_url", "version", "enable_manager")

    def __init__(self, path, main_py, base_directory, database_url, version, enable_manager=False):
        self.path = path
        self.main_py = main_py
        self.base_directory = base_directory
        self.database_url = database_url
        self.version = version
        # ComfyUI-Manager 4 (the comfyui_manager pip package) is started by this flag.
        self.enable_manager = enable_manager

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
    return Checkout(
        path=app_dir,
        main_py=main_py,
        base_directory='"--base-directory"' in flags_source,
        database_url='"--database-url"' in flags_source,
        version=_read_version(app_dir),
        enable_manager='"--enable-manager"' in flags_source,
    )


def _read_version(app_dir):
    try:
        with open(os.path.join(app_dir, "comfyui_version.py"), encoding="utf-8") as file:
            for line in file:
                if line.startswith("__version__"):
                    return line.split("=", 1)[1].strip().strip("\"'")
    except (OSError, UnicodeDecodeError):
        pass
    return None
