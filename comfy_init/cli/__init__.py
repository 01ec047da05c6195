"""The click CLI: parsing only. The operations live in their own modules and return results that
`render` prints as text or JSON; errors become exit codes in one place (`cli.main`)."""

import json
import sys

import click

from comfy_init import __version__
from comfy_init.errors import ComfyInitError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ComfyInitError as error:
            for line in error.problems:
                click.echo(f"ERROR: comfy-init: {line}", err=True)
            ctx.exit(error.exit_code)


def render(result, as_json, text):
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(text)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="comfy-init")
def cli():
    """Run several ComfyUI instances safely on one shared data directory."""


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                               "help_option_names": []}, add_help_option=False)
@click.pass_context
def run(ctx):
    """Prepare, claim and supervise this instance's ComfyUI (the image ENTRYPOINT; see `run --help`)."""
    from comfy_init import signals
    from comfy_init.run import run_main

    signals.install()
    ctx.exit(run_main(ctx.args))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for an answer.")
def health(as_json, timeout):
    """Exit 0 when this instance's ComfyUI answers /system_stats (for HEALTHCHECK), else 1."""
    from comfy_init.health import check_health

    result = check_health(timeout=timeout)
    render(result, as_json, f"{'healthy' if result.healthy else 'unhealthy'}: {result.url}: {result.detail}")
    sys.exit(0 if result.healthy else 1)
