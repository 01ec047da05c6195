"""`comfy-init`: the root group."""

import click

from comfy_init import __version__
from comfy_init.cli.lazy import LazyGroup


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, lazy_commands={
    "run": "comfy_init.cli.run:run",
    "health": "comfy_init.cli.health:health",
    "registry": "comfy_init.cli.registry:registry",
    "instance": "comfy_init.cli.instance:instance",
    "template": "comfy_init.cli.template:template",
    "compose": "comfy_init.cli.compose:compose",
    "snapshot": "comfy_init.cli.snapshot:snapshot",
    "migrate": "comfy_init.cli.migrate:migrate_command",
    "verify-fs": "comfy_init.cli.verify_fs:verify_fs_command",
    "status": "comfy_init.cli.status:status",
    "check": "comfy_init.cli.check:check_command",
    "models": "comfy_init.cli.models:models",
    "workflows": "comfy_init.cli.workflows:workflows",
    "venv": "comfy_init.cli.venv:venv",
})
@click.version_option(__version__, prog_name="comfy-init")
def cli():
    """Run several ComfyUI instances safely on one shared data directory."""


def main(argv):
    """Run the CLI and return its exit code. A usage error of click (exit 2) is printed as click
    prints it, or, when --json was asked for, as the one envelope like every other failure."""
    from comfy_init.problems import Problem
    from comfy_init.results import Result, render

    try:
        return cli.main(args=argv, prog_name="comfy-init", standalone_mode=False) or 0
    except click.UsageError as error:
        if "--json" not in argv:
            error.show()
            return error.exit_code
        command = error.ctx.command_path.split(" ", 1)[-1] if error.ctx else "comfy-init"
        problem = Problem("bad-option", error.format_message(), fix=f"see `{error.ctx.command_path if error.ctx else 'comfy-init'} --help`")
        return render(Result(command, problems=[problem]), as_json=True)
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
