"""`comfy-init snapshot restore`."""

import sys

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for
from comfy_init.cli.snapshot.progress import Progress
from comfy_init.errors import UsageError
from comfy_init.problems import Problem


@click.command("restore")
@click.argument("reference", metavar="SNAPSHOT")
@click.option("--to", "to", metavar="ID", default=None, help="Restore into this instance id instead (a clone).")
@click.option("--nodes-as-refs", is_flag=True, help="Clone custom nodes that were git checkouts from their remote.")
@click.option("--yes", is_flag=True, help="Do not ask (needed without a terminal).")
@data_option
@json_option
def restore_command(reference, to, nodes_as_refs, yes, data_dir, as_json):
    """Replace a stopped instance's tree with a snapshot, in one atomic swap.

    The archive is checked as it is extracted beside the instance; the replaced tree is first
    snapshotted as `pre-restore` (restore that to undo) and then moved to meta/trash.

    \b
    Example:  comfy-init snapshot restore core-1/20261201T101404Z-3f2a9c1d --yes
    """
    from comfy_init.ops.snapshots import restore_snapshot

    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(Problem("usage", f"restoring {reference!r} needs confirmation",
                                     fix="pass --yes (there is no terminal to ask on)"))
        click.confirm(f"Replace {'instance ' + to if to else 'the instance'} with snapshot {reference!r}?", abort=True)
    progress = Progress("restoring")
    result = restore_snapshot(layout_for(data_dir), reference, to=to, nodes_as_refs=nodes_as_refs, progress=progress)
    progress.done()
    finish(result, as_json)
