"""`comfy-init check`."""

import os

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for
from comfy_init.errors import MissingPathError
from comfy_init.problems import Problem

_ID = click.IntRange(0, 2**31 - 1)


@click.command("check")
@click.option("--fix", is_flag=True, help="Do the safe fixes (links, registering orphaned directories, "
              "stale temporaries of comfy-init) and report each.")
@click.option("--puid", type=_ID, default=None, metavar="UID",
              help="The uid that runs ComfyUI (default: each instance directory's owner).")
@click.option("--pgid", type=_ID, default=None, metavar="GID",
              help="Its gid (default: --puid's value, or each instance directory's group).")
@click.option("--app", "app_dir", default=None, metavar="DIR",
              help="The ComfyUI checkout (default: $COMFY_APP_DIRECTORY or /opt/comfyui, skipped when absent).")
@data_option
@json_option
def check_command(fix, puid, pgid, app_dir, data_dir, as_json):
    """Find every conflict of a shared data tree; exit 0 when there is none, 1 when some remain.

    Every finding names its path, what is wrong, and the exact command that fixes it.

    \b
    Example:  comfy-init check --data /srv/comfy
              comfy-init check --fix --json
    """
    from comfy_init.ops.check.run import check_data

    if app_dir is not None and not os.path.isdir(app_dir):
        raise MissingPathError(Problem("missing-path", "--app: no ComfyUI checkout there", path=app_dir,
                                       fix="pass the folder that holds ComfyUI's main.py, or leave --app out"))
    app = app_dir or os.environ.get("COMFY_APP_DIRECTORY", "").strip() or "/opt/comfyui"
    finish(check_data(layout_for(data_dir), fix=fix, puid=puid, pgid=pgid, app_dir=app), as_json)
