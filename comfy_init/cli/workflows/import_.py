"""`comfy-init workflows import`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command("import")
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.option("--to", "to", metavar="ID", default=None, help="The instance to copy them into.")
@click.option("--all", "all_instances", is_flag=True, help="Copy them into every instance.")
@click.option("--force", is_flag=True, help="Replace a different workflow of the same name (kept as a backup).")
@data_option
@json_option
def import_command(names, to, all_instances, force, data_dir, as_json):
    """Copy shared workflows into an instance's user/default/workflows/ (--to ID) or every
    instance's (--all). Models they name that shared/models lacks are listed.

    \b
    Exit codes: 0 imported; 64 a bad name, or neither/both of --to and --all; 65 not a workflow,
    or in the way (use --force); 66 no such instance or workflow.
    Example:  comfy-init workflows import portrait --all
    """
    from comfy_init.ops.workflows.commands import import_workflows

    finish(import_workflows(layout_for(data_dir), names, to=to, all_instances=all_instances, force=force), as_json)
