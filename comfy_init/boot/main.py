"""`comfy-init run`: from environment variables and a data directory to a supervised ComfyUI.

The order is the contract: read and check every variable (78), look at the checkout (66), plan the
tree and report every obstacle (65/77) — all before anything is written. Then (unless --dry-run)
make the tree, claim the instance, check the port, drop privileges, and supervise.

Parsed by hand, not with click: this is PID 1's start-up path, and every import here is paid by
every container start. The boot package imports the standard library only (the store imports
jsonschema lazily, and only to explain a registry that fails its check).
"""

import os
import sys

from comfy_init import log
from comfy_init.errors import ComfyInitError, UsageError
from comfy_init.problems import Problem
from comfy_init.results import Result, render

USAGE_TEXT = """\
Usage: comfy-init run [--dry-run] [--json] [-- COMFYUI_ARGS...]

  Prepare this instance's data tree, claim the instance and run ComfyUI as a supervised child.
  Configuration comes from the environment (COMFY_INSTANCE_ID, COMFY_DATA_DIRECTORY, ...; see
  the README). Arguments after `--` are appended to ComfyUI's command line, after CLI_ARGS.

Options:
  --dry-run   print the configuration, every action and the ComfyUI command; change nothing
  --json      with --dry-run: print it as one JSON envelope
  -h, --help  show this message and exit
"""


def _usage(message, fix):
    return UsageError(Problem("usage", f"comfy-init run: {message}", fix=fix))


def parse_arguments(argv):
    """Return (options, extra ComfyUI arguments); raise UsageError (64) on bad input."""
    options = {"dry_run": False, "json": False, "help": False}
    extra = []
    for index, arg in enumerate(argv):
        if arg == "--":
            extra = list(argv[index + 1:])
            break
        if arg == "--dry-run":
            options["dry_run"] = True
        elif arg == "--json":
            options["json"] = True
        elif arg in ("-h", "--help"):
            options["help"] = True
        else:
            raise _usage(f"unknown argument {arg!r}",
                         f"pass ComfyUI's own arguments after `--` (comfy-init run -- {arg}) or in CLI_ARGS")
    if options["json"] and not options["dry_run"]:
        raise _usage("--json only goes with --dry-run", "add --dry-run, or leave out --json")
    return options, extra


def run_main(argv, environ=None):
    """Entry point of `comfy-init run`; returns the exit status."""
    environ = os.environ if environ is None else environ
    as_json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    try:
        options, extra = parse_arguments(argv)
        if options["help"]:
            sys.stdout.write(USAGE_TEXT)
            return 0
        from comfy_init.boot.config import load_config
        from comfy_init.boot.isolation import argument_path_problems
        from comfy_init.comfyui.command import owned_argument_problems

        config = load_config(environ)
        log.set_instance(config.instance_id)
        source = f"comfy-init run -- {' '.join(extra)}"
        problems = owned_argument_problems(extra, source)
        if config.multi_instance:
            problems += argument_path_problems(config.layout, config.instance, extra, source, config.app_dir)
        if problems:
            raise UsageError(*[Problem("usage", p.message, fix=p.fix) for p in problems])
        from comfy_init.boot.plan import dry_run, make_plan

        if options["dry_run"]:
            return render(dry_run(config, environ, extra), as_json=options["json"])
        plan = make_plan(config, environ, extra)
        from comfy_init.boot.launch import launch

        return launch(plan, environ)
    except ComfyInitError as error:
        return render(Result.failure("run", error), as_json=as_json)
