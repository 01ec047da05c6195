"""`comfy-init health`: the image's HEALTHCHECK."""

import click

from comfy_init.cli.options import finish, json_option


@click.command()
@json_option
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for an answer.")
def health(as_json, timeout):
    """Exit 0 when this instance's ComfyUI answers /system_stats (for HEALTHCHECK), else 1.

    \b
    Example:  comfy-init health --json
    """
    from comfy_init.ops.health import check_health

    finish(check_health(timeout=timeout), as_json)
