"""`comfy-init migrate`."""

import sys

import click

from comfy_init.cli.options import data_option, finish, json_option, layout_for
from comfy_init.errors import UsageError
from comfy_init.problems import Problem


class _Counter:
    """Progress on a terminal: entries walked, then steps carried out (never in --json output)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.drawn = False

    def __call__(self, done, total=None):
        if self.enabled and (total is not None or done % 5000 == 0):
            text = f"step {done}/{total}" if total is not None else f"{done} entries looked at"
            click.echo(f"\r  migrate: {text}   ", file=self.stream, nl=False)
            self.drawn = True

    def done(self):
        if self.drawn:
            click.echo("", file=self.stream)


@click.command("migrate")
@click.option("--from", "from_path", metavar="PATH", default=None,
              help="The old layout's folder (default: DATA/comfy, or the folders at the data root).")
@click.option("--to-instance", "instance_id", metavar="ID", default=None,
              help="The instance the old tree becomes (default: main; a rerun: the one recorded).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Its port, when it is registered now (default: the next free one from 8193).")
@click.option("--variant", type=click.Choice(["core", "complete", "cpu"]), default="core", show_default=True,
              help="Which image runs it, when it is registered now.")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--rollback", is_flag=True,
              help="Return a finished or interrupted migration to the old layout (with --dry-run: say what it would undo).")
@click.option("--yes", is_flag=True, help="Do not ask (needed without a terminal).")
@data_option
@json_option
def migrate_command(from_path, instance_id, port, variant, dry_run, rollback, yes, data_dir, as_json):
    """Move a single-instance tree to shared/ + instances/ID/, journaled and verified.

    Models go to shared/models and input to shared/input (merged: the same file is kept once),
    custom_nodes, user (with the database) and output to instances/ID/; each old folder becomes a
    relative link to its new place. On one filesystem everything moves by rename. The same command
    after an interruption resumes; --rollback undoes. See docs/migration.md.

    \b
    Example:  comfy-init migrate --data /srv/comfy --dry-run
              comfy-init migrate --data /srv/comfy --to-instance main --yes
    """
    from comfy_init.ops.migrate.migration import migrate, rollback as roll_back

    layout = layout_for(data_dir)
    if not (yes or dry_run):
        if not sys.stdin.isatty():
            raise UsageError(Problem("usage", f"{'rolling back' if rollback else 'migrating'} {layout.data} needs "
                                     "confirmation", fix="look at the plan with --dry-run, then pass --yes"))
        what = "Undo the last migration" if rollback else f"Migrate {layout.data} to instance {instance_id or 'main'!r}"
        click.confirm(f"{what}?", abort=True)
    progress = _Counter()
    if rollback:
        result = roll_back(layout, progress=progress, dry_run=dry_run)
    else:
        result = migrate(layout, from_path=from_path, instance_id=instance_id, port=port, variant=variant,
                         dry_run=dry_run, progress=progress)
    progress.done()
    finish(result, as_json)
