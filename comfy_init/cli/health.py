"""`comfy-init health`: the image's HEALTHCHECK."""

import sys

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for an answer.")
def health(as_json, timeout):
    """Exit 0 when this instance's ComfyUI answers /system_stats (for HEALTHCHECK), else 1."""
    from comfy_init.cli import render
    from comfy_init.health import check_health

    result = check_health(timeout=timeout)
    render(result, as_json, f"{'healthy' if result.healthy else 'unhealthy'}: {result.url}: {result.detail}")
    sys.exit(0 if result.healthy else 1)
