"""`comfy-init status`: every instance of a data tree in one table, for a person or a script.

One row per configured instance, claim, or directory under instances/: its state (running here,
running on another host, stale claim, stopped, orphaned directory), port, uptime (since its
claim) and, for instances running on this host, what ComfyUI itself says (/system_stats: version,
devices and VRAM; /queue, or /prompt on releases without it: the queue length) and the CPU and
memory of ComfyUI's whole process tree (psutil: the processes below the comfy-init holding the
instance's lock).

Every probe of every instance runs at once, in threads sharing ONE deadline: an instance that
accepts the connection and never answers costs one timeout, and twenty such cost the same one.
Instances on another host are not probed (their address is not known here). Nothing here walks
instance files, and nothing prints.
"""

import threading
import time

from comfy_init.comfyui.endpoint import probe_host
from comfy_init.comfyui.http import HTTPFailure, get_json
from comfy_init.errors import ComfyInitError
from comfy_init.ops.instances import instance_directories
from comfy_init.ops.process_tree import ProcessSampler
from comfy_init.results import Result
from comfy_init.store import claims, locks
from comfy_init.store.clock import parse_utc
from comfy_init.store.registry import Registry

RUNNING_HERE, RUNNING_ELSEWHERE, STALE = claims.RUNNING_HERE, claims.RUNNING_ELSEWHERE, claims.STALE
STOPPED, ORPHANED = "stopped", "orphaned directory"
DEFAULT_LISTEN = "0.0.0.0"


def status(layout, *, timeout=1.0, sampler=None):
    """The Result of one look at the tree. `sampler` (a ProcessSampler) carries CPU times from one
    call to the next (`--watch`); a fresh one measures CPU over at least its minimum window."""
    try:
        rows = collect(layout, timeout, sampler or ProcessSampler())
    except ComfyInitError as error:
        return Result.failure("status", error)
    lines = table(rows) if rows else ["no instances (create one: comfy-init instance create core-1)"]
    return Result("status", {"data": layout.data, "timeout": timeout, "instances": rows}, lines)


def collect(layout, timeout, sampler):
    document = Registry(layout).load()
    ids = sorted(set(document["instances"]) | set(document["claims"]) | instance_directories(layout))
    rows = [_row(layout, i, document["instances"].get(i), document["claims"].get(i)) for i in ids]
    here = [row for row in rows if row["state"] == RUNNING_HERE]
    holders = {row["id"]: locks.holder_pid(layout.lock_path(row["id"])) for row in here}
    sampler.begin(holders)
    probe_all(here, document, timeout)
    figures = sampler.end()
    for row in here:
        row.update(figures.get(row["id"], {}))
    return rows


def _row(layout, instance_id, entry, claim):
    if claim is None:
        state = STOPPED if entry is not None else ORPHANED
    else:
        state = claims.judge(layout, instance_id, claim)
    since = claim.get("since") if claim is not None and state != STALE else None
    started = parse_utc(since) if since else None
    return {
        "id": instance_id, "configured": entry is not None, "variant": (entry or {}).get("variant"),
        "state": state, "port": (claim or {}).get("port", (entry or {}).get("port")),
        "holder": None if claim is None else {key: claim.get(key) for key in (
            "host", "container_id", "pid", "since", "renewed_at", "generation")},
        "since": since, "uptime_seconds": None if started is None else max(0, int(time.time() - started)),
        "probed": False, "health": None, "detail": None, "comfyui_version": None, "devices": [],
        "queue": None, "cpu_percent": None, "memory_bytes": None, "processes": None,
    }


# -- probes ---------------------------------------------------------------------------------------

def probe_all(rows, document, timeout):
    """/system_stats and /queue of every row at once; fills the rows in place."""
    deadline = time.monotonic() + timeout
    answers = {}
    threads = []
    for row in rows:
        base = f"http://{probe_host(document['claims'][row['id']].get('listen', DEFAULT_LISTEN))}:{row['port']}"
        for what, job in (("stats", _stats), ("queue", _queue)):
            thread = threading.Thread(target=_keep, args=(answers, (row["id"], what), job, base, deadline),
                                      daemon=True)
            thread.start()
            threads.append(thread)
    limit = deadline + 0.5  # every socket operation ends by the deadline; this is a backstop
    for thread in threads:
        thread.join(max(0.0, limit - time.monotonic()))
    for row in rows:
        row["probed"] = True
        _fill(row, answers.get((row["id"], "stats")), answers.get((row["id"], "queue")), timeout)


def _keep(answers, key, job, base, deadline):
    try:
        answers[key] = job(base, deadline)
    except HTTPFailure as failure:
        answers[key] = failure


def _remaining(deadline):
    return max(0.01, deadline - time.monotonic())


def _stats(base, deadline):
    stats = get_json(base + "/system_stats", _remaining(deadline))
    if not isinstance(stats, dict):
        raise HTTPFailure("/system_stats answered something that is not an object")
    return stats


def _queue(base, deadline):
    """{"running": n, "pending": n}, from /queue; from /prompt's queue_remaining (running and
    pending together) where /queue is unknown."""
    try:
        queue = get_json(base + "/queue", _remaining(deadline))
        return {"running": len(queue.get("queue_running") or []), "pending": len(queue.get("queue_pending") or [])}
    except HTTPFailure as failure:
        if failure.status != 404:
            raise
    remaining = get_json(base + "/prompt", _remaining(deadline)).get("exec_info", {}).get("queue_remaining")
    return {"running": None, "pending": None, "remaining": remaining}


def _fill(row, stats, queue, timeout):
    if stats is None or isinstance(stats, HTTPFailure) and stats.timed_out:
        stats = HTTPFailure(f"no answer within {timeout:g} s", timed_out=True)
    if isinstance(stats, HTTPFailure):
        row["health"] = "no answer" if stats.status is None else f"HTTP {stats.status}"
        row["detail"] = str(stats)
        return
    row["health"] = "ok"
    system = stats.get("system") if isinstance(stats.get("system"), dict) else {}
    row["comfyui_version"] = system.get("comfyui_version")
    row["devices"] = [_device(d) for d in stats.get("devices") or [] if isinstance(d, dict)]
    if isinstance(queue, dict):
        row["queue"] = queue


def _device(device):
    return {key: device.get(key) for key in ("name", "type", "index", "vram_total", "vram_free")}


# -- the table ------------------------------------------------------------------------------------

HEADER = ("ID", "STATE", "PORT", "HEALTH", "UPTIME", "VERSION", "DEVICES", "VRAM", "QUEUE", "CPU", "MEM")


def table(rows):
    body = [tuple(_cells(row)) for row in rows]
    widths = [max(len(line[i]) for line in [HEADER, *body]) for i in range(len(HEADER))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [HEADER, *body]]


def _cells(row):
    yield row["id"]
    yield row["state"]
    yield str(row["port"] or "-")
    yield row["health"] or "-"
    yield duration(row["uptime_seconds"])
    yield row["comfyui_version"] or "-"
    yield ",".join(_device_name(d) for d in row["devices"]) or "-"
    yield _vram(row["devices"])
    yield _queue_text(row["queue"])
    yield "-" if row["cpu_percent"] is None else f"{row['cpu_percent']:.0f}%"
    yield "-" if row["memory_bytes"] is None else size(row["memory_bytes"])


def _device_name(device):
    if device.get("type") and device.get("index") is not None:
        return f"{device['type']}:{device['index']}"
    return str(device.get("type") or device.get("name") or "?")


def _vram(devices):
    known = [d for d in devices if isinstance(d.get("vram_total"), int) and isinstance(d.get("vram_free"), int)
             and d["vram_total"] > 0]
    if not known:
        return "-"
    total = sum(d["vram_total"] for d in known)
    used = total - sum(d["vram_free"] for d in known)
    return f"{size(used)}/{size(total)}"


def _queue_text(queue):
    if queue is None:
        return "-"
    if queue.get("running") is None:
        return str(queue.get("remaining", "-"))
    return str(queue["running"] + queue["pending"])


def duration(seconds):
    """42s, 5m07s, 3h02m, 2d04h."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def size(count):
    """Bytes in binary units: 512B, 3.4K, 120M, 7.9G."""
    for unit in ("B", "K", "M", "G"):
        if count < 1024 or unit == "G":
            return f"{count:.0f}{unit}" if unit == "B" else f"{count:.1f}{unit}"
        count /= 1024
