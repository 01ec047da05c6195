"""`comfy-init venv freeze`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command()
@click.argument("instance_id", metavar="ID")
@data_option
@json_option
def freeze(instance_id, data_dir, as_json):
    """Print the packages installed into the instance's environment itself (not the image's), as
    `pip freeze` does; read from their metadata, without running pip.

    \b
    Example:  comfy-init venv freeze core-1 > core-1-requirements.txt
    """
    from comfy_init.ops.venv import freeze_venv

    finish(freeze_venv(layout_for(data_dir), instance_id), as_json)
