"""`comfy-init compose`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for


@click.command("compose")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Where to write it (default: <data>/meta/compose.instances.yml); - for stdout.")
@data_option
@json_option
def compose(output, data_dir, as_json):
    """Write a Compose file with one service per configured instance, for use beside the shipped one.

    \b
    Example:  comfy-init compose && docker compose -f compose/docker-compose.yml \\
                -f data/meta/compose.instances.yml up -d core-3
    """
    from comfy_init.ops.compose import compose as make_compose

    layout = layout_for(data_dir)
    finish(make_compose(layout, output=None if output in (None, "-") else output, to_stdout=output == "-"), as_json)
