"""`comfy-init venv rebuild`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for
from comfy_init.cli.venv.options import python_option


@click.command()
@click.argument("instance_id", metavar="ID")
@python_option
@data_option
@json_option
def rebuild(instance_id, python, data_dir, as_json):
    """Move a stopped instance's environment aside (venv.moved-<UTC>, kept), make a fresh one from
    the image's interpreter and reinstall its own packages and its nodes' requirements.txt.
    Refused while the instance runs.

    \b
    Example:  comfy-init venv rebuild core-1
    """
    from comfy_init.ops.venv import rebuild_venv

    finish(rebuild_venv(layout_for(data_dir), instance_id, python=python), as_json)
