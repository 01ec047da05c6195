"""`comfy-init verify-fs`."""

import click

from comfy_init.cli.options import finish, json_option


@click.command("verify-fs")
@click.argument("directory", metavar="[DIR]", required=False)
@click.option("--other", metavar="PATH", default=None,
              help="The same directory through another mount (another host's view), to test locks across mounts.")
@click.option("--data", "data_dir", default=None, metavar="DIR",
              help="The data directory, tested when DIR is left out (default: $COMFY_DATA_DIRECTORY or /data).")
@json_option
def verify_fs_command(directory, other, data_dir, as_json):
    """Try what the data tree's filesystem keeps: flock between processes (and across mounts with
    --other), atomic rename, O_EXCL, hard links, directory fsync, symlinks; say which claim mode is
    safe (locks + lease, or lease only). Works in a scratch folder it removes.

    \b
    Example:  comfy-init verify-fs /data
              comfy-init verify-fs /mnt/share-a --other /mnt/share-b
    """
    from comfy_init.cli.options import layout_for
    from comfy_init.ops.verify_fs import verify_fs

    finish(verify_fs(directory or layout_for(data_dir).data, other), as_json)
