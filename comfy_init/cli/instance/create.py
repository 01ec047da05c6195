"""`comfy-init instance create`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


def _gpu_list(_ctx, _param, value):
    if value is None:
        return []
    gpus = [part.strip() for part in value.split(",") if part.strip()]
    if not gpus or not all(part.isdigit() for part in gpus):
        raise click.BadParameter(f"{value!r}: a GPU id or a comma-separated list of them, e.g. 0 or 0,1")
    return gpus


@click.command("create")
@click.argument("instance_id", metavar="ID")
@click.option("--variant", type=click.Choice(["core", "complete", "cpu"]), default="core", show_default=True,
              help="Which image runs it.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Its port (default: the next free one from 8193 to 8292).")
@click.option("--gpu", "gpus", callback=_gpu_list, default=None, help="GPU id(s) to give it, e.g. 1 or 0,1.")
@click.option("--share-gpu", is_flag=True, help="Its GPUs may also be given to other instances that share.")
@click.option("--template", default=None, help="A template (comfy-init template list) to apply to it once created.")
@click.option("--nodes", "template_nodes", type=click.Choice(["clone", "skip"]), default="skip", show_default=True,
              help="With --template: clone the template's custom nodes at their commits.")
@click.option("--adopt", is_flag=True, help="Register an existing instances/ID directory instead of refusing it.")
@data_option
@json_option
def create_command(instance_id, variant, port, gpus, share_gpu, template, template_nodes, adopt, data_dir, as_json):
    """Configure instance ID in the registry and create its tree, ready for its first start.

    \b
    Example:  comfy-init instance create core-3 --gpu 1 --data /srv/comfy
              comfy-init instance create core-4 --template studio --nodes clone
    """
    from comfy_init.ops.instances import create_instance

    finish(create_instance(layout_for(data_dir, must_exist=False), instance_id, variant=variant, port=port, gpus=gpus,
                           share_gpu=share_gpu, template=template, adopt=adopt, template_nodes=template_nodes), as_json)
