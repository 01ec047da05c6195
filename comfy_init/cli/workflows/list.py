"""`comfy-init workflows list`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command("list")
@data_option
@json_option
def list_command(data_dir, as_json):
    """List the workflows in shared/workflows: who published each, when, and the models it names
    that shared/models lacks.

    \b
    Example:  comfy-init workflows list --json
    """
    from comfy_init.ops.workflows.commands import list_workflows

    finish(list_workflows(layout_for(data_dir)), as_json)
