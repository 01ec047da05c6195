"""`comfy-init venv show|rebuild|freeze`."""

import click

from comfy_init.cli.lazy import LazyGroup


@click.group(cls=LazyGroup, lazy_commands={
    "show": "comfy_init.cli.venv.show:show",
    "rebuild": "comfy_init.cli.venv.rebuild:rebuild",
    "freeze": "comfy_init.cli.venv.freeze:freeze",
})
def venv():
    """An instance's own Python environment (instances/<id>/venv): look, rebuild, freeze."""
