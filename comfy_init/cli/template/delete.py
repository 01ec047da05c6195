"""`comfy-init template delete`."""

import sys

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for
from comfy_init.errors import UsageError
from comfy_init.problems import Problem


@click.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask (needed without a terminal).")
@data_option
@json_option
def delete_command(name, yes, data_dir, as_json):
    """Remove template NAME: its folder moves to meta/trash (undo with mv).

    \b
    Example:  comfy-init template delete studio --yes
    """
    from comfy_init.ops.templates import delete_template

    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(Problem("usage", f"deleting template {name!r} needs confirmation",
                                     fix="pass --yes (there is no terminal to ask on)"))
        click.confirm(f"Delete template {name!r} (its folder moves to meta/trash)?", abort=True)
    finish(delete_template(layout_for(data_dir), name), as_json)
