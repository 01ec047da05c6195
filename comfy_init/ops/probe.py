"""One GET of ComfyUI's /system_stats with a short timeout: its JSON, or None when it does not answer."""

import json
import urllib.error
import urllib.request


def probe_stats(url, timeout):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            stats = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return stats if isinstance(stats, dict) else None
