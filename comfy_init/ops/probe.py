"""One GET of ComfyUI's /system_stats with a short timeout: its JSON, or None when it does not answer.
Through comfyui.http, the one HTTP client (one deadline for the whole exchange, no urllib)."""

from comfy_init.comfyui.http import HTTPFailure, get_json


def probe_stats(url, timeout):
    try:
        stats = get_json(url, timeout)
    except (HTTPFailure, OSError, ValueError):
        return None
    return stats if isinstance(stats, dict) else None
