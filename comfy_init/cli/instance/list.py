"""`comfy-init instance list`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command("list")
@click.option("--trash", is_flag=True, help="List what `instance delete` moved to meta/trash instead.")
@click.option("--timeout", default=1.0, show_default=True, help="Seconds each running instance has to answer.")
@data_option
@json_option
def list_command(trash, timeout, data_dir, as_json):
    """One row per instance: configured ones, running ones and leftover directories.

    \b
    Example:  comfy-init instance list --json
    """
    from comfy_init.ops.instances import list_instances, trash_entries

    layout = layout_for(data_dir)
    finish(trash_entries(layout) if trash else list_instances(layout, timeout), as_json)
