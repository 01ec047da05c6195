"""`comfy-init snapshot delete`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command("delete")
@click.argument("reference", metavar="SNAPSHOT")
@data_option
@json_option
def delete_command(reference, data_dir, as_json):
    """Delete one snapshot (its archive and its manifest copy). SNAPSHOT is NAME, ID/NAME or a path.

    \b
    Example:  comfy-init snapshot delete core-1/20261201T101404Z-3f2a9c1d
    """
    from comfy_init.ops.snapshots import delete_snapshot

    finish(delete_snapshot(layout_for(data_dir), reference), as_json)
