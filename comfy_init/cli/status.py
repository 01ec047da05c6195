"""`comfy-init status [--json] [--watch SECONDS]`: every instance of the tree in one table."""

import json
import sys
import time

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for
from comfy_init.errors import UsageError
from comfy_init.problems import Problem

MIN_WATCH = 0.5
MAX_TIMEOUT = 60.0
# Home, then clear to the end of the screen: each frame replaces the last without scrolling.
REDRAW = "\x1b[H\x1b[J"


@click.command()
@click.option("--watch", "watch", default=None, metavar="SECONDS",
              help=f"Look again every SECONDS (at least {MIN_WATCH:g}) until Ctrl-C; redraws in place on a terminal.")
@click.option("--timeout", default="1", show_default=True, metavar="SECONDS",
              help="Seconds the instances have, all together, to answer.")
@data_option
@json_option
def status(watch, timeout, data_dir, as_json):
    """State, port, health, uptime, ComfyUI version, devices and VRAM, queue length, and CPU and
    memory (running on this host) of every instance.

    \b
    Examples:  comfy-init status
               comfy-init status --watch 2
               comfy-init status --json
    """
    from comfy_init.ops.status import status as look

    timeout = _seconds("--timeout", timeout, 0.01, MAX_TIMEOUT, "--timeout 1")
    interval = None if watch is None else _seconds("--watch", watch, MIN_WATCH, 86400, "--watch 2")
    layout = layout_for(data_dir)
    if interval is None:
        finish(look(layout, timeout=timeout), as_json)
    _watch(layout, timeout, interval, as_json, look)


def _seconds(option, text, low, high, example):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise UsageError(Problem("usage", f"{option} {text!r}: must be a number of seconds from {low:g} to {high:g}",
                                 fix=f"e.g. {example}"))
    return value


def _watch(layout, timeout, interval, as_json, look):
    """Frames until Ctrl-C (exit 0). On a terminal each frame is drawn over the last; otherwise
    frames follow each other (text: a blank line between; --json: one envelope per line)."""
    from comfy_init.ops.process_tree import ProcessSampler

    sampler = ProcessSampler()
    redraw = sys.stdout.isatty() and not as_json
    try:
        while True:
            started = time.monotonic()
            result = look(layout, timeout=timeout, sampler=sampler)
            _show(result, layout, interval, as_json, redraw)
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        raise click.exceptions.Exit(0) from None


def _show(result, layout, interval, as_json, redraw):
    if as_json:
        click.echo(json.dumps(result.envelope(), default=str))
        return
    stamp = time.strftime("%H:%M:%S", time.localtime())
    lines = [f"comfy-init status of {layout.data}, every {interval:g} s (Ctrl-C ends), {stamp}", ""]
    lines += result.lines + [f"ERROR: {line}" for problem in result.problems for line in problem.lines()]
    click.echo((REDRAW if redraw else "") + "\n".join(lines) + ("" if redraw else "\n"))
