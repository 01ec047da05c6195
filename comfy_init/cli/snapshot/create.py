"""`comfy-init snapshot create`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for
from comfy_init.cli.snapshot.progress import Progress


@click.command("create")
@click.argument("instance_id", metavar="ID")
@click.option("--include-output", is_flag=True, help="Also archive output/ (left out by default).")
@click.option("--note", default=None, help="A note kept in the manifest and shown by `snapshot list`.")
@data_option
@json_option
def create_command(instance_id, include_output, note, data_dir, as_json):
    """Archive ID's custom_nodes/ and user/ (and output/) into meta/backup-snapshots/ID/.

    A running instance is snapshotted live: its database through SQLite's backup API.

    \b
    Example:  comfy-init snapshot create core-1 --note "before updating nodes"
    """
    from comfy_init.ops.snapshots import create_snapshot

    progress = Progress("archiving")
    result = create_snapshot(layout_for(data_dir), instance_id, include_output=include_output, note=note,
                             progress=progress)
    progress.done()
    finish(result, as_json)
