"""ComfyUI-Manager 4: whether ComfyUI is started with --enable-manager (COMFY_MANAGER).

Since Manager 4 the Manager is a pip package (comfyui_manager) that ComfyUI's main.py imports when
started with --enable-manager; releases that declare the flag list the pinned package in their
manager_requirements.txt. Older releases load the Manager as a custom node instead, and comfy-init
passes nothing for them.

Whether the package is there is decided without running the interpreter (a few stat calls on every
start): comfyui_manager/__init__.py in the site-packages of COMFY_PYTHON's environment, or in a
folder that one of its .pth files adds (how a per-instance venv sees the image's packages). Only a
refusal (COMFY_MANAGER=on, package not found that way) asks the interpreter itself, to be sure.
"""

import os

from comfy_init.errors import ConfigError
from comfy_init.problems import Problem

MODES = ("auto", "on", "off")
FLAG = "--enable-manager"
PACKAGE = "comfyui_manager"
REQUIREMENTS = "manager_requirements.txt"


class ManagerChoice:
    """Whether --enable-manager is passed, and why (one line for the log and the dry run)."""

    __slots__ = ("enabled", "reason")

    def __init__(self, enabled, reason):
        self.enabled = enabled
        self.reason = reason

    def as_dict(self):
        return {"enabled": self.enabled, "reason": self.reason}


def choose(mode, checkout, python, instance_python=None):
    """The ManagerChoice for COMFY_MANAGER=`mode`; ConfigError (78) when `on` cannot be honoured.
    `instance_python` is the instance environment's (COMFY_VENV on): ComfyUI runs with it, so a
    Manager installed there counts, before the image's (`python`)."""
    if mode == "off":
        return ManagerChoice(False, "COMFY_MANAGER=off")
    if not checkout.enable_manager:
        if mode == "on":
            raise ConfigError(Problem(
                "bad-setting", f"COMFY_MANAGER=on: the ComfyUI release at {checkout.path} has no {FLAG} "
                "(it predates ComfyUI-Manager 4, whose Manager is a custom node)",
                fix="use a ComfyUI release that declares --enable-manager, or set COMFY_MANAGER=auto "
                    "(the custom-node Manager then loads as before)"))
        return ManagerChoice(False, f"this ComfyUI release has no {FLAG}")
    location = (instance_python and package_location(instance_python)) or package_location(python)
    if instance_python and os.path.isfile(instance_python):
        python = instance_python  # asked, and named in the fix: installs there survive docker rm
    if location is None and mode == "on":
        location = _asked_interpreter(python)
    if location is None:
        if mode == "on":
            requirements = os.path.join(checkout.path, REQUIREMENTS)
            raise ConfigError(Problem(
                "bad-setting", f"COMFY_MANAGER=on: the {PACKAGE} package is not installed for {python}",
                fix=f"install it: {python} -m pip install -r {requirements}; or set COMFY_MANAGER=auto"))
        return ManagerChoice(False, f"{PACKAGE} is not installed for {python}")
    return ManagerChoice(True, f"{PACKAGE} found in {location}")


def package_location(python):
    """The site-packages folder that holds comfyui_manager for `python`'s environment, or None."""
    for folder in _site_folders(python):
        if os.path.isfile(os.path.join(folder, PACKAGE, "__init__.py")):
            return folder
    return None


def _site_folders(python):
    """site-packages of the environment `python` belongs to, then the folders its .pth files add."""
    prefix = os.path.dirname(os.path.dirname(os.path.abspath(python)))  # <venv>/bin/python, not resolved
    folders = [os.path.join(lib, name, "site-packages") for lib in (os.path.join(prefix, "lib"),)
               for name in _entries(lib) if name.startswith("python3")]
    local = os.path.join(prefix, "local", "lib")
    folders += [os.path.join(local, name, "dist-packages") for name in _entries(local) if name.startswith("python3")]
    folders.append(os.path.join(prefix, "lib", "python3", "dist-packages"))
    folders = [folder for folder in folders if os.path.isdir(folder)]
    added = []
    for folder in folders:
        added += _pth_folders(folder)
    return folders + added


def _entries(folder):
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def _pth_folders(site):
    """The folders a site folder's .pth files add (lines that are paths, not `import` lines)."""
    found = []
    for name in _entries(site):
        if not name.endswith(".pth"):
            continue
        try:
            with open(os.path.join(site, name), encoding="utf-8") as file:
                lines = file.read().splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            line = line.strip()
            if line and not line.startswith(("#", "import ", "import\t")):
                found.append(os.path.join(site, line))
    return found


def _asked_interpreter(python):
    """Ask `python` where it imports comfyui_manager from (a refusal only: it costs a start-up)."""
    import subprocess  # not on the path of a start that is not refused

    code = f"import importlib.util as u; s = u.find_spec({PACKAGE!r}); print(s.origin if s else '')"
    try:
        result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    origin = result.stdout.strip()
    return os.path.dirname(os.path.dirname(origin)) if result.returncode == 0 and origin else None
