"""Where an instance's ComfyUI listens, parsed once: its probe address, bind address and URLs."""

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
