"""The option the venv commands share."""

import click

python_option = click.option(
    "--python", "python", default=None, metavar="PATH",
    help="The image's interpreter the environment is made from (default: $COMFY_PYTHON, else comfy-init's own).")
