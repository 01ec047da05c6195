"""`comfy-init template create`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command("create")
@click.argument("name")
@click.option("--from", "instance_id", required=True, metavar="ID", help="The instance to capture.")
@click.option("--args", default=None, metavar="ARGS",
              help="ComfyUI arguments to store with it (one shell-quoted string; not --port or --listen).")
@click.option("--description", default=None, help="A line saying what the template is for.")
@data_option
@json_option
def create_command(name, instance_id, args, description, data_dir, as_json):
    """Capture instance ID's settings, Manager config and custom node list as template NAME.

    Secrets (token, password, api key ... values) are left out and reported.

    \b
    Example:  comfy-init template create studio --from core-1 --args '--preview-method auto'
    """
    from comfy_init.ops.templates import create_template

    finish(create_template(layout_for(data_dir), name, instance_id, args=args, description=description), as_json)
