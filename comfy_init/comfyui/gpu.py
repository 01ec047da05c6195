"""Whether CUDA can work in this container, judged without importing torch.

The NVIDIA container runtime exposes /dev/nvidiactl and /dev/nvidia<N> only to containers given
a GPU; CUDA base images set NVIDIA_VISIBLE_DEVICES=all even without one, so that variable alone
proves nothing, but `void`/`none` is an explicit "no GPU".
"""

import os

NO_GPU_WORDS = ("", "void", "none")


def detect_gpu(environ, root="/"):
    """Return a reason string when an NVIDIA GPU is usable here, else None."""
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


def resolve_device(device, environ, root="/"):
    """Return (device, reason): 'cuda' or 'cpu', and why. `device` is COMFY_DEVICE's value."""
    if device != "auto":
        return device, f"COMFY_DEVICE={device}"
    found = detect_gpu(environ, root)
    if found:
        return "cuda", f"NVIDIA GPU found ({found})"
    return "cpu", "no NVIDIA GPU found (no /dev/nvidiactl, /dev/nvidia<N> or /proc/driver/nvidia/gpus)"
