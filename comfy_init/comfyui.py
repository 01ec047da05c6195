"""What comfy-init knows about ComfyUI: its checkout, the machine's GPU, and the command line.

Everything here is cheap on purpose: the checkout is probed by reading one source file (no ComfyUI
or torch import), and the GPU is detected from device nodes and the NVIDIA container runtime's
environment, which is what decides whether CUDA can work inside this container at all.
"""

import os

from comfy_init.errors import MissingPathError
from comfy_init.tree import COMPAT_FOLDERS, INSTANCE_FOLDERS, LINK, MOVE_ASIDE, OK, RELINK, Step

# The flags' definitions live in comfy/cli_args.py in every ComfyUI release that has them.
CLI_ARGS_SOURCE = os.path.join("comfy", "cli_args.py")
NO_GPU_WORDS = ("", "void", "none")


class Checkout:
    """A ComfyUI checkout and the optional flags its release understands."""

    __slots__ = ("path", "main_py", "base_directory", "database_url", "version")

    def __init__(self, path, main_py, base_directory, database_url, version):
        self.path = path
        self.main_py = main_py
        self.base_directory = base_directory
        self.database_url = database_url
        self.version = version

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


def probe_checkout(app_dir):
    """Look at the checkout in `app_dir`; raise MissingPathError (66) when it has no main.py."""
    main_py = os.path.join(app_dir, "main.py")
    if not os.path.isfile(main_py):
        raise MissingPathError(
            f"COMFY_APP_DIRECTORY={app_dir!r}: no main.py there; point COMFY_APP_DIRECTORY at the "
            "ComfyUI checkout (the folder that holds main.py), e.g. COMFY_APP_DIRECTORY=/opt/comfyui")
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
    )


def _read_version(app_dir):
    try:
        with open(os.path.join(app_dir, "comfyui_version.py"), encoding="utf-8") as file:
            for line in file:
                if line.startswith("__version__"):
                    return line.split("=", 1)[1].strip().strip("\"'")
    except OSError:
        pass
    return None


def detect_gpu(environ, root="/"):
    """Return a reason string when an NVIDIA GPU is usable here, else None.

    The NVIDIA container runtime exposes /dev/nvidiactl and /dev/nvidia<N> only to containers given
    a GPU; CUDA base images set NVIDIA_VISIBLE_DEVICES=all even without one, so that variable alone
    proves nothing, but `void`/`none` is an explicit "no GPU".
    """
    visible = environ.get("NVIDIA_VISIBLE_DEVICES")
    if visible is not None and visible.strip().lower() in NO_GPU_WORDS:
        return None
    dev = os.path.join(root, "dev")
    if os.path.exists(os.path.join(dev, "nvidiactl")):
        return "/dev/nvidiactl"
    try:
        names = os.listdir(dev)
    except OSError:
        names = []
    for name in names:
        if name.startswith("nvidia") and name[6:].isdigit():
            return f"/dev/{name}"
    gpus = os.path.join(root, "proc", "driver", "nvidia", "gpus")
    try:
        if os.listdir(gpus):
            return "/proc/driver/nvidia/gpus"
    except OSError:
        pass
    return None


def resolve_device(config, environ, root="/"):
    """Return (device, reason): 'cuda' or 'cpu', and why."""
    if config.device != "auto":
        return config.device, f"COMFY_DEVICE={config.device}"
    found = detect_gpu(environ, root)
    if found:
        return "cuda", f"NVIDIA GPU found ({found})"
    return "cpu", "no NVIDIA GPU found (no /dev/nvidiactl, /dev/nvidia<N> or /proc/driver/nvidia/gpus)"


def system_stats_url(config):
    """Where this instance's ComfyUI answers when ready (from inside its own container or host)."""
    host = config.listen.split(",")[0]
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}/system_stats"


def database_path(config):
    return os.path.join(config.base_dir, "user", "comfyui.db")


def build_command(config, checkout, device, extra_args=()):
    """The exact argv that starts ComfyUI. The user's CLI_ARGS and extra arguments come last, so they win."""
    argv = [config.python, checkout.main_py,
            "--listen", config.listen, "--port", str(config.port), "--disable-auto-launch"]
    if checkout.base_directory:
        argv += ["--base-directory", config.base_dir]
    if checkout.database_url:
        # One database per instance: ComfyUI exits when a second process opens the same file.
        argv += ["--database-url", "sqlite:///" + database_path(config)]
    if device == "cpu":
        argv.append("--cpu")
    elif config.cuda_device is not None:
        argv += ["--cuda-device", str(config.cuda_device)]
    return argv + list(config.cli_args) + list(extra_args)


def plan_checkout_links(config, checkout):
    """For releases without --base-directory: links inside the checkout to the instance's folders.

    The image's own folders in the way are moved aside (renamed), never deleted.
    """
    if checkout.base_directory:
        return []
    steps = []
    names = COMPAT_FOLDERS if not config.multi_instance else INSTANCE_FOLDERS + ("models", "input")
    for name in names:
        path = os.path.join(checkout.path, name)
        target = os.path.join(config.base_dir, name)
        if os.path.islink(path):
            steps.append(Step(OK if os.readlink(path) == target else RELINK, path, target))
        elif os.path.lexists(path):
            steps.append(Step(MOVE_ASIDE, path, target))
        else:
            steps.append(Step(LINK, path, target))
    return steps
