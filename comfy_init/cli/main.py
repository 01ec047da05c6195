"""`comfy-init`: the root group."""

import click

from comfy_init import __version__
from comfy_init.cli.lazy import LazyGroup


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, lazy_commands={
    "run": "comfy_init.cli.run:run",
    "health": "comfy_init.cli.health:health",
    "registry": "comfy_init.cli.registry:registry",
    "instance": "comfy_init.cli.instance:instance",
    "compose": "comfy_init.cli.compose:compose",
    "snapshot": "comfy_init.cli.snapshot:snapshot",
})
@click.version_option(__version__, prog_name="comfy-init")
def cli():
    """Run several ComfyUI instances safely on one shared data directory."""
