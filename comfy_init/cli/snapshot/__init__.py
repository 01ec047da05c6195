"""`comfy-init snapshot create|list|show|verify|restore|prune|delete`."""

import click

from comfy_init.cli.lazy import LazyGroup


@click.group(cls=LazyGroup, lazy_commands={
    name: f"comfy_init.cli.snapshot.{name}:{name}_command"
    for name in ("create", "list", "show", "verify", "restore", "prune", "delete")})
def snapshot():
    """Snapshot instances into archives, check them, and restore them."""
