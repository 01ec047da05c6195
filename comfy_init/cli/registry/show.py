"""`comfy-init registry show`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command()
@data_option
@json_option
def show(data_dir, as_json):
    """Print the registry: its revision, configured instances and live claims.

    \b
    Example:  comfy-init registry show --data /srv/comfy --json
    """
    from comfy_init.ops.registry import show_registry

    finish(show_registry(layout_for(data_dir)), as_json)
