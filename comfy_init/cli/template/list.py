"""`comfy-init template list`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command("list")
@data_option
@json_option
def list_command(data_dir, as_json):
    """One row per template under meta/shared-configs/.

    \b
    Example:  comfy-init template list --json
    """
    from comfy_init.ops.templates import list_templates

    finish(list_templates(layout_for(data_dir)), as_json)
