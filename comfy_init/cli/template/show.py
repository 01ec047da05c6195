"""`comfy-init template show`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command("show")
@click.argument("name")
@data_option
@json_option
def show_command(name, data_dir, as_json):
    """What template NAME holds: files, custom nodes with their origin and requirements, arguments.

    \b
    Example:  comfy-init template show studio
    """
    from comfy_init.ops.templates import show_template

    finish(show_template(layout_for(data_dir), name), as_json)
