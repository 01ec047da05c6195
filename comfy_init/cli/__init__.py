"""The click CLI: parsing only, a file per subcommand. The operations live in their own modules and
return results that `render` prints as text or JSON; errors become exit codes in one place
(`_Group.invoke`). `comfy-init run` normally never gets here: __main__ hands it to the hand-written
PID-1 path before click is imported."""

import json

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


from comfy_init.cli.health import health  # noqa: E402  (subcommands register on the group above)
from comfy_init.cli.run import run  # noqa: E402

cli.add_command(run)
cli.add_command(health)
