"""`comfy-init snapshot prune`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command("prune")
@click.argument("instance_id", metavar="ID")
@click.option("--keep", type=click.IntRange(min=0), required=True, help="How many of the newest to keep.")
@data_option
@json_option
def prune_command(instance_id, keep, data_dir, as_json):
    """Delete ID's snapshots but the newest N.

    \b
    Example:  comfy-init snapshot prune core-1 --keep 5
    """
    from comfy_init.ops.snapshots import prune_snapshots

    finish(prune_snapshots(layout_for(data_dir), instance_id, keep), as_json)
