"""`comfy-init health`: does this instance's ComfyUI answer? For Docker's HEALTHCHECK.

Ready means GET /system_stats answers 200; it is cheap for ComfyUI, unlike /object_info.
"""

import json
import urllib.error
import urllib.request

from comfy_init.comfyui import system_stats_url
from comfy_init.config import load_config


class HealthResult:
    def __init__(self, url, healthy, detail):
        self.url = url
        self.healthy = healthy
        self.detail = detail

    def as_dict(self):
        return {"url": self.url, "healthy": self.healthy, "detail": self.detail}


def check_health(environ=None, timeout=5.0):
    config = load_config(environ)
    url = system_stats_url(config)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
            stats = json.loads(body)
    except urllib.error.HTTPError as error:
        return HealthResult(url, False, f"answered HTTP {error.code}")
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return HealthResult(url, False, f"no answer: {reason}")
    version = stats.get("system", {}).get("comfyui_version", "unknown") if isinstance(stats, dict) else "unknown"
    return HealthResult(url, True, f"ComfyUI {version} answered")
