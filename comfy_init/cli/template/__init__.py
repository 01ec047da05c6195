"""`comfy-init template create|list|show|apply|delete`."""

import click

from comfy_init.cli.lazy import LazyGroup


@click.group(cls=LazyGroup, lazy_commands={
    name: f"comfy_init.cli.template.{name}:{name}_command" for name in ("create", "list", "show", "apply", "delete")})
def template():
    """Capture an instance's settings and custom node list as a template, and apply it to others."""
