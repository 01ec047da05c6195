"""`comfy-init run` as listed by `comfy-init --help`; its options are parsed by comfy_init.boot."""

import click


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "help_option_names": []}, add_help_option=False)
@click.pass_context
def run(ctx):
    """Prepare, claim and supervise this instance's ComfyUI (the image ENTRYPOINT; see `run --help`)."""
    from comfy_init.boot.main import run_main
    from comfy_init.pid1 import signals

    signals.install()
    ctx.exit(run_main(ctx.args))
