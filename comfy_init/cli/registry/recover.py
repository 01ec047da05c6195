"""`comfy-init registry recover backup|reset`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command()
@click.argument("mode", type=click.Choice(["backup", "reset"]))
@data_option
@json_option
def recover(mode, data_dir, as_json):
    """Replace a damaged registry: MODE backup restores the .bak, reset starts empty.

    The damaged file is kept as instance-registry.json.corrupt-<time>; a valid registry is left
    alone.

    \b
    Example:  comfy-init registry recover backup --data /srv/comfy
    """
    from comfy_init.ops.registry import recover_registry

    finish(recover_registry(layout_for(data_dir), mode), as_json)
