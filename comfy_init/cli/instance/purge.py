"""`comfy-init instance purge`."""

import sys

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for
from comfy_init.errors import UsageError
from comfy_init.problems import Problem


@click.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask (needed without a terminal).")
@data_option
@json_option
def purge_command(yes, data_dir, as_json):
    """Delete for good what `instance delete` moved to meta/trash.

    \b
    Example:  comfy-init instance purge --yes
    """
    from comfy_init.ops.instances import purge_trash

    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(Problem("usage", "purging the trash needs confirmation", fix="pass --yes"))
        click.confirm("Delete everything in meta/trash for good?", abort=True)
    finish(purge_trash(layout_for(data_dir)), as_json)
