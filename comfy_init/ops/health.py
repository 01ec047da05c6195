"""`comfy-init health`: does this instance's ComfyUI answer? For Docker's HEALTHCHECK.

Ready means GET /system_stats answers 200; it is cheap for ComfyUI, unlike /object_info.
"""

import json
import urllib.error
import urllib.request

from comfy_init.boot.config import load_config
from comfy_init.comfyui.endpoint import system_stats_url
from comfy_init.errors import ComfyInitError
from comfy_init.problems import Problem
from comfy_init.results import Result


def check_health(environ=None, timeout=5.0):
    """A Result: exit 0 when ComfyUI answers, 1 (problem `unhealthy`) when not, 78 for bad settings."""
    try:
        config = load_config(environ)
    except ComfyInitError as error:
        return Result.failure("health", error)
    url = system_stats_url(config.listen, config.port)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            stats = json.loads(response.read())
    except urllib.error.HTTPError as error:
        return _unhealthy(url, f"answered HTTP {error.code}")
    except (OSError, ValueError) as error:
        return _unhealthy(url, f"no answer: {getattr(error, 'reason', error)}")
    system = stats.get("system", {}) if isinstance(stats, dict) else {}
    version = system.get("comfyui_version", "unknown") if isinstance(system, dict) else "unknown"
    detail = f"ComfyUI {version} answered"
    return Result("health", {"url": url, "healthy": True, "detail": detail}, [f"healthy: {url}: {detail}"])


def _unhealthy(url, detail):
    return Result("health", {"url": url, "healthy": False, "detail": detail},
                  problems=[Problem("unhealthy", f"unhealthy: {url}: {detail}",
                                    fix="see the container's log (docker logs) for why ComfyUI does not answer")])
