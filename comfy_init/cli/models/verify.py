"""`comfy-init models verify`."""

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for
from comfy_init.cli.snapshot.progress import Progress


@click.command("verify")
@click.option("--fix", is_flag=True,
              help="Replace instance copies of shared models with hard links of the shared file (the copies "
                   "go to meta/trash); nothing else is changed.")
@click.option("--instance", "instance_ids", multiple=True, metavar="ID",
              help="Only this instance's folders (repeatable; shared/models is always checked).")
@click.option("--settle", type=click.FloatRange(min=0), default=2.0, show_default=True, metavar="SECONDS",
              help="How long to wait before looking again at files changed in the last two minutes "
                   "(a file that changed meanwhile is a download in progress).")
@data_option
@json_option
def verify_command(fix, instance_ids, settle, data_dir, as_json):
    """Check that every instance finds its models in shared/models, and that no model file is a
    copy, empty, a left-over or running download, or a damaged safetensors file.

    The extra_model_paths.yaml files read: the checkout's (COMFY_APP_DIRECTORY, when set), those
    the instance's cli_args name with --extra-model-paths-config, and instances/ID/extra_model_paths.yaml.
    Hashes (BLAKE3) are kept in meta/model-hashes.json: a second run over unchanged files reads
    none of them.

    \b
    Exit codes: 0 nothing found; 1 duplicates only; 65 damaged, empty or unshared;
    75 a download is still running; 66 no such instance.
    Example:  comfy-init models verify --instance core-1 --fix
    """
    import os

    from comfy_init.ops.models.verify import verify_models

    progress = Progress("hashing")
    result = verify_models(layout_for(data_dir), list(instance_ids), fix=fix, progress=progress, settle=settle,
                           app_dir=os.environ.get("COMFY_APP_DIRECTORY") or None)
    progress.done()
    finish(result, as_json)
