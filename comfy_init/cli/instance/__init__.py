"""`comfy-init instance create|list|show|delete|purge`."""

import click

from comfy_init.cli.lazy import LazyGroup


@click.group(cls=LazyGroup, lazy_commands={
    name: f"comfy_init.cli.instance.{name}:{name}_command" for name in ("create", "list", "show", "delete", "purge")})
def instance():
    """Create, list, inspect and delete the instances of a data tree."""
