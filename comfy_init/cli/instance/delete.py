"""`comfy-init instance delete`."""

import sys

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for
from comfy_init.errors import UsageError
from comfy_init.problems import Problem


@click.command("delete")
@click.argument("instance_id", metavar="ID")
@click.option("--yes", is_flag=True, help="Do not ask (needed without a terminal).")
@click.option("--keep-data", is_flag=True, help="Only remove it from the registry; leave its directory.")
@click.option("--no-snapshot", is_flag=True, help="Do not take a snapshot first (the directory still goes to the trash).")
@data_option
@json_option
def delete_command(instance_id, yes, keep_data, no_snapshot, data_dir, as_json):
    """Remove a stopped instance: a snapshot first (unless --no-snapshot), then its directory moves
    to meta/trash (undo with mv), then its entry goes.

    \b
    Example:  comfy-init instance delete core-3 --yes
    """
    from comfy_init.ops.instances import delete_instance

    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(Problem("usage", f"deleting {instance_id!r} needs confirmation",
                                     fix="pass --yes (there is no terminal to ask on)"))
        click.confirm(f"Delete instance {instance_id!r} (its directory moves to meta/trash)?", abort=True)
    finish(delete_instance(layout_for(data_dir), instance_id, keep_data=keep_data, snapshot=not no_snapshot),
           as_json)
