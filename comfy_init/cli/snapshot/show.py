"""`comfy-init snapshot show`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command("show")
@click.argument("reference", metavar="SNAPSHOT")
@data_option
@json_option
def show_command(reference, data_dir, as_json):
    """A snapshot's manifest, without extracting it (`--json` has every entry).

    SNAPSHOT is a NAME from `snapshot list`, ID/NAME, an instance ID (its newest), or a path.

    \b
    Example:  comfy-init snapshot show core-1 --json
    """
    from comfy_init.ops.snapshots import show_snapshot

    finish(show_snapshot(layout_for(data_dir), reference), as_json)
