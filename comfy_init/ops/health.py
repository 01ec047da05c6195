"""`comfy-init health`: is this container's instance healthy? For Docker's HEALTHCHECK.

Healthy means, all at once:

- ComfyUI answers: GET /system_stats answers 200 (cheap for ComfyUI, unlike /object_info);
- this container still holds the instance's claim (the registry names this host and container,
  and its lock is held by the claim's pid);
- in multi-instance mode, the isolation invariants hold (tree.invariants: temp, user, output,
  custom_nodes and the database resolve into no other instance and not into shared/; `models`
  leads to shared/models).

It stays cheap: a handful of stat calls, two small reads (registry, owner file) and one HTTP
request on a plain socket; no click (the CLI's fast path), no urllib, no jsonschema. Without a
meta/ folder in the data directory (ComfyUI not started by `comfy-init run` on this tree) only the
HTTP answer is checked.
"""

import os

from comfy_init.boot.config import load_config
from comfy_init.comfyui.endpoint import system_stats_url
from comfy_init.comfyui.http import HTTPFailure, get_json
from comfy_init.errors import ComfyInitError
from comfy_init.problems import Problem
from comfy_init.results import Result


def check_health(environ=None, timeout=5.0):
    """A Result: exit 0 when healthy; 1 (`unhealthy`) when ComfyUI does not answer, 75
    (`claim-lost`) when the claim is not ours, 65/66 for a broken invariant, 78 for bad settings.
    Every finding is reported at once."""
    try:
        config = load_config(environ)
    except ComfyInitError as error:
        return Result.failure("health", error)
    url = system_stats_url(config.listen, config.port)
    problems, detail = _probe(url, timeout)
    checks = _tree_checks(config)
    problems += checks["problems"]
    data = {"url": url, "healthy": not problems, "detail": detail, "instance": config.instance_id,
            "claim": checks["claim"], "isolation": checks["isolation"]}
    lines = [f"healthy: {url}: {detail}"] if not problems else []
    return Result("health", data, lines, problems)


def _probe(url, timeout):
    try:
        stats = get_json(url, timeout)
    except HTTPFailure as failure:
        return [_unhealthy(url, str(failure))], str(failure)
    system = stats.get("system", {}) if isinstance(stats, dict) else {}
    version = system.get("comfyui_version", "unknown") if isinstance(system, dict) else "unknown"
    return [], f"ComfyUI {version} answered"


def _unhealthy(url, detail):
    return Problem("unhealthy", f"unhealthy: {url}: {detail}",
                   fix="see the container's log (docker logs) for why ComfyUI does not answer")


def _tree_checks(config):
    """The claim and isolation checks: {"claim": "ok" | "lost" | "not checked", "isolation": ...,
    "problems": [...]}."""
    layout = config.layout
    if not os.path.isdir(layout.meta):
        return {"claim": "not checked", "isolation": "not checked", "problems": []}
    from comfy_init.store.registry import Registry
    from comfy_init.tree.invariants import claim_problems, isolation_problems

    try:
        claim = claim_problems(layout, config.instance_id, Registry(layout).load())
    except ComfyInitError as error:  # a damaged registry: that is the finding
        claim = error.problems
    isolation = isolation_problems(layout, config.instance) if config.multi_instance else []
    return {"claim": "lost" if claim else "ok",
            "isolation": ("broken" if isolation else "ok") if config.multi_instance else "not checked",
            "problems": claim + isolation}
