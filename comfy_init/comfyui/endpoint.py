"""Where an instance's ComfyUI listens, parsed once: its probe address, bind address and URLs,
and whether its port is free on this host."""

import errno
import socket

WILDCARDS = ("0.0.0.0", "::", "")


def first_host(listen):
    """The first address of a COMFY_LISTEN value (ComfyUI takes a comma-separated list)."""
    return listen.split(",")[0].strip()


def probe_host(listen):
    """The address to reach ComfyUI at from its own host: a wildcard means loopback."""
    host = first_host(listen)
    if host in WILDCARDS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def bind_host(listen):
    """The address to bind to when checking that the port is free ("" for a wildcard)."""
    host = first_host(listen)
    return "" if host in WILDCARDS else host


def base_url(listen, port):
    return f"http://{probe_host(listen)}:{port}"


def system_stats_url(listen, port):
    """Ready means this answers 200: cheap for ComfyUI, unlike /object_info."""
    return base_url(listen, port) + "/system_stats"


def port_in_use(listen, port):
    """True when binding `port` on COMFY_LISTEN's first address fails with EADDRINUSE. Other bind
    errors (an address this host does not have) are ComfyUI's to report: False."""
    host = bind_host(listen)
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as error:
        return error.errno == errno.EADDRINUSE
    finally:
        probe.close()
    return False
