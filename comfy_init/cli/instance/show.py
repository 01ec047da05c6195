"""`comfy-init instance show`."""

import sys

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


def _progress(files, total):
    if sys.stderr.isatty():
        click.echo(f"\r  counting: {files} files, {total / 2**20:.1f} MiB", err=True, nl=False)


@click.command("show")
@click.argument("instance_id", metavar="ID")
@click.option("--sizes", is_flag=True, help="Also count the files of output/ and custom_nodes/ (walks them).")
@data_option
@json_option
def show_command(instance_id, sizes, data_dir, as_json):
    """Everything `list` shows about ID, plus its paths and the ComfyUI command `run` would use.

    \b
    Example:  comfy-init instance show core-3 --sizes
    """
    from comfy_init.ops.instances import show_instance

    result = show_instance(layout_for(data_dir), instance_id, sizes=sizes, progress=_progress)
    if sizes and sys.stderr.isatty():
        click.echo("", err=True)
    finish(result, as_json)
