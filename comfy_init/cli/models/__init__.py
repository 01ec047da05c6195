"""`comfy-init models verify`."""

import click

from comfy_init.cli.lazy import LazyGroup


@click.group(cls=LazyGroup, lazy_commands={"verify": "comfy_init.cli.models.verify:verify_command"})
def models():
    """Check the shared models: every instance uses shared/models, no copies, no damaged files."""
