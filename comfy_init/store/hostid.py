"""Who we are, as a claim records it: host name, boot id, container id and pid.

The boot id tells "same kernel" (so a free flock proves the holder dead); the container id lets
the same container, started again after a host reboot, reclaim its instance at once.
"""

import os
import socket


def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
            return file.read().strip()
    except OSError:
        return "unknown"


def container_id():
    """The Docker container id (12 hex digits) when we run in one, from our mounts; else None."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                marker = line.find("/containers/")
                if marker != -1 and "/hostname " in line:
                    candidate = line[marker + len("/containers/"):].split("/", 1)[0]
                    if len(candidate) == 64 and all(c in "0123456789abcdef" for c in candidate):
                        return candidate[:12]
    except OSError:
        pass
    return None


def identity():
    """This process as a claim names its holder."""
    return {"host": socket.gethostname(), "boot_id": boot_id(), "container_id": container_id(),
            "pid": os.getpid()}
