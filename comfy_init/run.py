"""`comfy-init run`: from environment variables and a data directory to a supervised ComfyUI.

The order is the contract: read and check every variable (78), look at the checkout (66), plan the
tree and report every obstacle (65/77) — all before anything is written. Then (unless --dry-run)
make the tree, claim the instance, check the port, drop privileges, and supervise.

Parsed by hand, not with click: this is PID 1's start-up path, and every import here is paid by
every container start.
"""

import json
import os
import shlex
import sys

from comfy_init import log
from comfy_init.errors import USAGE, ComfyInitError

USAGE_TEXT = """\
Usage: comfy-init run [--dry-run] [--json] [-- COMFYUI_ARGS...]

  Prepare this instance's data tree, claim the instance and run ComfyUI as a supervised child.
  Configuration comes from the environment (COMFY_INSTANCE_ID, COMFY_DATA_DIRECTORY, ...; see
  the README). Arguments after `--` are appended to ComfyUI's command line, after CLI_ARGS.

Options:
  --dry-run   print the configuration, every action and the ComfyUI command; change nothing
  --json      with --dry-run: print it as one JSON object
  -h, --help  show this message and exit
"""


class Plan:
    """Everything `run` decided before touching the disk."""

    def __init__(self, config, checkout, steps, device, device_reason, command):
        self.config = config
        self.checkout = checkout
        self.steps = steps
        self.device = device
        self.device_reason = device_reason
        self.command = command

    def as_dict(self):
        return {
            "config": self.config.as_dict(),
            "checkout": self.checkout.as_dict(),
            "device": {"device": self.device, "reason": self.device_reason},
            "actions": [step.as_dict() for step in self.steps],
            "command": self.command,
        }

    def as_text(self):
        lines = ["comfy-init run --dry-run: nothing was changed", "", "configuration:"]
        for name, value in self.config.as_dict().items():
            lines.append(f"  {name:<18} {value!r}" if not isinstance(value, str) else f"  {name:<18} {value}")
        checkout = self.checkout
        lines += ["", "checkout:",
                  f"  {'path':<18} {checkout.path}",
                  f"  {'version':<18} {checkout.version or 'unknown'}",
                  f"  {'--base-directory':<18} {'supported' if checkout.base_directory else 'not supported: links inside the checkout'}",
                  f"  {'--database-url':<18} {'supported' if checkout.database_url else 'not supported'}",
                  "", f"device: {self.device} ({self.device_reason})", "", "actions:"]
        lines += [f"  {step.describe()}" for step in self.steps]
        lines += ["", "command:", "  " + shlex.join(self.command)]
        return "\n".join(lines)


def parse_arguments(argv):
    """Return (options, extra ComfyUI arguments); raise SystemExit-worthy UsageError on bad input."""
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
            raise UsageError(
                f"comfy-init run: unknown argument {arg!r}; pass ComfyUI's own arguments after `--` "
                f"(comfy-init run -- {arg}) or in CLI_ARGS")
    if options["json"] and not options["dry_run"]:
        raise UsageError("comfy-init run: --json only goes with --dry-run")
    from comfy_init.config import reserved_argument_problems

    problems = reserved_argument_problems(extra)
    if problems:
        raise UsageError(*(f"comfy-init run -- {' '.join(extra)}: {problem}" for problem in problems))
    return options, extra


class UsageError(ComfyInitError):
    exit_code = USAGE


def plan_steps(config, checkout):
    """Every step of the data tree and, for old releases, of the checkout's links."""
    from comfy_init.comfyui import plan_checkout_links
    from comfy_init.tree import plan_tree

    return plan_tree(config) + plan_checkout_links(config, checkout)


def make_plan(environ, extra_args):
    from comfy_init.comfyui import build_command, probe_checkout, resolve_device
    from comfy_init.config import load_config

    config = load_config(environ)
    checkout = probe_checkout(config.app_dir)
    steps = plan_steps(config, checkout)
    device, reason = resolve_device(config, environ)
    command = build_command(config, checkout, device, extra_args)
    return Plan(config, checkout, steps, device, reason, command)


def run_main(argv, environ=None):
    """Entry point of `comfy-init run`; returns the exit status."""
    environ = os.environ if environ is None else environ
    try:
        options, extra = parse_arguments(argv)
        if options["help"]:
            sys.stdout.write(USAGE_TEXT)
            return 0
        plan = make_plan(environ, extra)
        if options["dry_run"]:
            if options["json"]:
                sys.stdout.write(json.dumps(plan.as_dict(), indent=2) + "\n")
            else:
                sys.stdout.write(plan.as_text() + "\n")
            return 0
        from comfy_init.launch import launch
        return launch(plan, environ)
    except ComfyInitError as error:
        for line in error.problems:
            log.error(line)
        return error.exit_code
