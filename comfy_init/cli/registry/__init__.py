"""`comfy-init registry show|recover`."""

import click

from comfy_init.cli.lazy import LazyGroup


@click.group(cls=LazyGroup, lazy_commands={
    "show": "comfy_init.cli.registry.show:show",
    "recover": "comfy_init.cli.registry.recover:recover",
})
def registry():
    """Look at or recover the instance registry (meta/instance-registry.json)."""
