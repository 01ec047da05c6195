"""`comfy-init snapshot verify`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for
from comfy_init.cli.snapshot.progress import Progress


@click.command("verify")
@click.argument("reference", metavar="SNAPSHOT")
@data_option
@json_option
def verify_command(reference, data_dir, as_json):
    """Read a whole snapshot: every member safe to restore, every hash equal to its manifest.

    \b
    Example:  comfy-init snapshot verify core-1
    """
    from comfy_init.ops.snapshots import verify_snapshot

    progress = Progress("verifying")
    result = verify_snapshot(layout_for(data_dir), reference, progress=progress)
    progress.done()
    finish(result, as_json)
