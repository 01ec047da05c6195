"""`comfy-init venv show`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for
from comfy_init.cli.venv.options import python_option


@click.command()
@click.argument("instance_id", metavar="ID")
@click.option("--no-size", is_flag=True, help="Do not walk the environment to add up its size.")
@python_option
@data_option
@json_option
def show(instance_id, no_size, python, data_dir, as_json):
    """Show an instance's environment: its path, the image build it was made for, whether it
    matches this image, its size (walks its own files) and its own packages.

    \b
    Example:  comfy-init venv show core-1 --json
    """
    from comfy_init.ops.venv import show_venv

    finish(show_venv(layout_for(data_dir), instance_id, python=python, sizes=not no_size), as_json)
