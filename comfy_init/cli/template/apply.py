"""`comfy-init template apply`."""

import sys

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for
from comfy_init.errors import UsageError
from comfy_init.problems import Problem


@click.command("apply")
@click.argument("name")
@click.argument("instance_id", metavar="ID")
@click.option("--nodes", type=click.Choice(["clone", "skip"]), default="skip", show_default=True,
              help="clone: git clone each recorded node at its commit into custom_nodes/ (existing folders are kept).")
@click.option("--yes", is_flag=True, help="Do not ask (needed without a terminal).")
@data_option
@json_option
def apply_command(name, instance_id, nodes, yes, data_dir, as_json):
    """Write template NAME's settings into the stopped instance ID (replaced files are kept as
    <file>.before-template-<UTC>), clone its nodes when asked, and record it in the registry.

    \b
    Example:  comfy-init template apply studio core-2 --nodes clone --yes
    """
    from comfy_init.ops.template_apply import apply_template

    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(Problem("usage", f"applying template {name!r} to {instance_id!r} needs confirmation",
                                     fix="pass --yes (there is no terminal to ask on)"))
        click.confirm(f"Apply template {name!r} to instance {instance_id!r}?", abort=True)
    finish(apply_template(layout_for(data_dir), name, instance_id, nodes=nodes), as_json)
