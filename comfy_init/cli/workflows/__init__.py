"""`comfy-init workflows publish|list|import`."""

import click

from comfy_init.cli.lazy import LazyGroup


@click.group(cls=LazyGroup, lazy_commands={
    "publish": "comfy_init.cli.workflows.publish:publish_command",
    "list": "comfy_init.cli.workflows.list:list_command",
    "import": "comfy_init.cli.workflows.import_:import_command",
})
def workflows():
    """Share workflows between instances through shared/workflows (copies, never links)."""
