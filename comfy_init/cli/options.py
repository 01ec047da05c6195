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
    "--data", "data_dir", type=click.Path(file_okay=False, path_type=str), default=None,
    help=f"The data directory (default: $COMFY_DATA_DIRECTORY or {DEFAULT_DATA}).")


def layout_for(data_dir):
    data = data_dir or os.environ.get("COMFY_DATA_DIRECTORY", "").strip() or DEFAULT_DATA
    return Layout(os.path.abspath(data))


def finish(result, as_json):
    """Render `result` and exit with its code."""
    raise click.exceptions.Exit(render(result, as_json=as_json))
