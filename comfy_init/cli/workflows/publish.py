"""`comfy-init workflows publish`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command("publish")
@click.argument("instance_id", metavar="ID")
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Replace a different shared workflow of the same name (kept as a backup).")
@data_option
@json_option
def publish_command(instance_id, names, force, data_dir, as_json):
    """Copy workflows from ID's user/default/workflows/ into shared/workflows/, recording who
    published them and when. Models they name that shared/models lacks are listed.

    \b
    Exit codes: 0 published; 64 a bad name; 65 not a workflow, or in the way (use --force);
    66 no such instance or workflow.
    Example:  comfy-init workflows publish core-1 portrait sdxl/upscale
    """
    from comfy_init.ops.workflows.commands import publish_workflows

    finish(publish_workflows(layout_for(data_dir), instance_id, names, force=force), as_json)
