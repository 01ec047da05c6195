"""Options every management command takes, and how a command ends."""

import os

import click

from comfy_init.layout import Layout
from comfy_init.results import render

DEFAULT_DATA = "/data"


def _remember_json(ctx, _param, value):
    ctx.find_root().meta["comfy_init.json"] = value
    return value


json_option = click.option("--json", "as_json", is_flag=True, callback=_remember_json, expose_value=True,
                           is_eager=True, help="Print the result as one JSON envelope.")
data_option = click.option(
    "--data", "data_dir", default=None, metavar="DIR",
    help=f"The data directory (default: $COMFY_DATA_DIRECTORY or {DEFAULT_DATA}).")


def layout_for(data_dir, must_exist=True):
    """The Layout of --data (or $COMFY_DATA_DIRECTORY, or /data). It must be an existing directory
    unless `must_exist` is false (instance create may start a new tree)."""
    from comfy_init.errors import error_for
    from comfy_init.problems import Problem

    if data_dir is not None and not data_dir.strip():
        raise error_for(Problem("usage", "--data '' names no directory", fix="give a path, or leave --data out"))
    data = os.path.abspath(data_dir or os.environ.get("COMFY_DATA_DIRECTORY", "").strip() or DEFAULT_DATA)
    if os.path.isdir(data) or (not must_exist and not os.path.lexists(data)):
        return Layout(data)
    if not os.path.lexists(data):
        raise error_for(Problem("missing-path", "the data directory does not exist", path=data,
                                fix="pass the data directory with --data (the folder that holds meta/)"))
    raise error_for(Problem("not-a-directory", "is not a directory", path=data,
                            fix="pass the data directory with --data (the folder that holds meta/)"))


def finish(result, as_json):
    """Render `result` and exit with its code."""
    raise click.exceptions.Exit(render(result, as_json=as_json))
