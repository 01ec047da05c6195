"""`comfy-init snapshot list`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command("list")
@click.argument("instance_id", metavar="[ID]", required=False)
@data_option
@json_option
def list_command(instance_id, data_dir, as_json):
    """The snapshots of every instance, or of ID, oldest first.

    \b
    Example:  comfy-init snapshot list core-1
    """
    from comfy_init.ops.snapshots import list_snapshots

    finish(list_snapshots(layout_for(data_dir), instance_id), as_json)
