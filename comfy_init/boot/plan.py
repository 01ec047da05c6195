"""Everything `run` decides before touching the disk: configuration, checkout, tree steps, device,
command. The dry run prints exactly this; the real start carries it out.
"""

import os
import shlex

from comfy_init.comfyui.checkout import probe_checkout
from comfy_init.comfyui.command import build_command, flag_values
from comfy_init.comfyui.gpu import resolve_device
from comfy_init.comfyui.manager import choose as choose_manager
from comfy_init.errors import ComfyInitError, error_for
from comfy_init.problems import Problem
from comfy_init.results import Result
from comfy_init.store.migration_journal import blocking_start
from comfy_init.tree.checkout_links import plan_checkout_links
from comfy_init.tree.planner import plan_tree


RECOVER_VARIABLE = "COMFY_REGISTRY_RECOVER"


def recover_advice(mode):
    """How the start path tells a user to recover a damaged registry."""
    return f"set {RECOVER_VARIABLE}={mode}"


class Plan:
    __slots__ = ("config", "checkout", "steps", "device", "device_reason", "command", "venv", "manager")

    def __init__(self, config, checkout, steps, device, device_reason, command, venv=None, manager=None):
        self.venv = venv  # the instance environment's Assessment; None when COMFY_VENV is off
        self.manager = manager  # comfy_init.comfyui.manager.ManagerChoice
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
            "venv": self.venv.as_dict() if self.venv else {"state": "off"},
            "command": self.command,
            "manager": self.manager.as_dict() if self.manager else None,
        }

    def lines(self):
        lines = ["comfy-init run --dry-run: nothing was changed", "", "configuration:"]
        for name, value in self.config.as_dict().items():
            lines.append(f"  {name:<18} {value!r}" if not isinstance(value, str) else f"  {name:<18} {value}")
        checkout = self.checkout
        lines += ["", "checkout:",
                  f"  {'path':<18} {checkout.path}",
                  f"  {'version':<18} {checkout.version or 'unknown'}",
                  f"  {'--base-directory':<18} {'supported' if checkout.base_directory else 'not supported: links inside the checkout'}",
                  f"  {'--database-url':<18} {'supported' if checkout.database_url else 'not supported'}",
                  f"  {'declares':<18} {', '.join(checkout.declared()) or 'none of the optional flags'}",
                  "", f"device: {self.device} ({self.device_reason})"]
        if self.manager is not None:
            state = "--enable-manager" if self.manager.enabled else "not enabled"
            lines.append(f"ComfyUI-Manager 4: {state} ({self.manager.reason})")
        lines += ["", "actions:"]
        lines += [f"  {step.describe()}" for step in self.steps]
        lines += ["", "environment:", "  " + (self.venv.describe() if self.venv else
                                              f"off: ComfyUI runs in {self.config.python}'s environment")]
        lines += ["", "command:", "  " + shlex.join(self.command)]
        return lines


def plan_steps(config, checkout):
    """Every step of the data tree and, for old releases, of the checkout's links."""
    steps = plan_tree(config.layout, config.instance, multi=config.multi_instance)
    return steps + plan_checkout_links(checkout, config.instance)


# ComfyUI's argparse refuses these unless the directory exists (is_valid_directory): say it first.
MUST_EXIST = ("--user-directory", "--models-directory")


def missing_directories(checkout, arguments, steps):
    """--user-directory / --models-directory values that name no directory (66), unless a step of
    the plan makes it (the instance's own user/ on a first start). Relative values are taken as
    ComfyUI takes them: from the checkout, its working directory."""
    made = {os.path.normpath(step.path) for step in steps}
    problems = []
    for flag, value, given in flag_values(arguments, MUST_EXIST):
        path = os.path.normpath(os.path.join(checkout.path, value)) if value else None
        if path and path not in made and not os.path.isdir(path):
            problems.append(Problem(
                "missing-path", f"ComfyUI argument {given} {value!r} is not an existing directory: "
                "ComfyUI refuses to start unless it exists",
                fix=f"create it (mkdir -p {shlex.quote(path)}) or remove {flag}"))
    return problems


def release_problems(config, checkout):
    """Settings the checkout's release cannot carry out (exit 78): only known once it is probed."""
    release = f"the ComfyUI release in {checkout.path} ({checkout.version or 'version unknown'})"
    problems = []
    more_than_one = config.cuda_device == "all" or "," in (config.cuda_device or "")
    if more_than_one and not checkout.cuda_device_list:
        problems.append(Problem(
            "release-lacks-feature", f"COMFY_CUDA_DEVICE={config.cuda_device!r}: {release} takes one GPU "
            "number for --cuda-device, not a list or 'all'",
            fix="set one number (COMFY_CUDA_DEVICE=0), leave it unset so that ComfyUI sees every GPU of "
                "the container, or use a newer release (the image's COMFYUI_REF)"))
    if config.assets == "hash" and not checkout.asset_hashing:
        problems.append(Problem(
            "release-lacks-feature", f"COMFY_ASSETS='hash': {release} has no --enable-asset-hashing",
            fix="unset COMFY_ASSETS, or use a newer release (the image's COMFYUI_REF)"))
    return problems


def make_plan(config, environ, extra_args):
    # First: on a half-migrated tree every other finding would be a symptom of the migration.
    blocked = blocking_start(config.layout, config.instance_id, config.multi_instance)
    if blocked is not None:
        raise error_for(blocked)
    checkout = probe_checkout(config.app_dir)
    arguments = list(config.cli_args) + list(extra_args)
    problems = release_problems(config, checkout)
    steps = plan_steps(config, checkout)
    problems += missing_directories(checkout, arguments, steps)
    if problems:
        raise error_for(*problems)
    device, reason = resolve_device(config.device, environ)
    venv = plan_venv(config)
    manager = choose_manager(config.manager, checkout, config.python, venv.python if venv else None)
    command = build_command(python=venv.python if venv else config.python, checkout=checkout, instance=config.instance,
                            listen=config.listen, port=config.port, device=device,
                            cuda_device=config.cuda_device, assets=config.assets, arguments=arguments,
                            manager=manager.enabled)
    return Plan(config, checkout, steps, device, reason, command, venv, manager)


def venv_enabled(config):
    """COMFY_VENV=on/off, or auto: on in multi-instance mode when COMFY_PYTHON's prefix holds an
    image build file (one stat; the images write it), so host runs keep running in COMFY_PYTHON's
    own environment, and compatibility mode leaves the old single-instance tree as it was."""
    if config.venv != "auto":
        return config.venv == "on"
    if not config.multi_instance:
        return False
    from comfy_init.venv.tag import build_file_for

    return os.path.isfile(build_file_for(config.python))


def plan_venv(config):
    """The instance environment's Assessment (two small reads when it fits), None when off."""
    if not venv_enabled(config):
        return None
    from comfy_init.venv.environment import assess

    return assess(config.instance, config.python, config.app_dir)


def claim_now(config):
    """What the registry says about this instance's claim right now: (state, record), state None
    when nobody holds it. Reads only; a damaged registry raises, as the start would."""
    from comfy_init.store import claims
    from comfy_init.store.registry import Registry

    record = Registry(config.layout).check()["claims"].get(config.instance_id)
    return (None, None) if record is None else (claims.judge(config.layout, config.instance_id, record), record)


def dry_run(config, environ, extra_args):
    """The dry run's Result: the plan and the instance's claim, or what would stop the start."""
    from comfy_init.store.claims import RUNNING_ELSEWHERE, RUNNING_HERE, describe_holder
    from comfy_init.store.registry import RegistryDamaged

    try:
        plan = make_plan(config, environ, extra_args)
        state, record = claim_now(config)
    except RegistryDamaged as damaged:
        return Result.failure("run --dry-run", damaged.advise(recover_advice))
    except ComfyInitError as error:
        return Result.failure("run --dry-run", error)
    data = dict(plan.as_dict(), claim={"state": state or "free", "holder": record})
    claim = ["", "claim: " + ("free" if state is None else f"{state}: {describe_holder(record)}")]
    if state in (RUNNING_HERE, RUNNING_ELSEWHERE):
        claim.append(f"  a start now would be refused (exit 75): instance {config.instance_id!r} is held")
    lines = plan.lines()
    return Result("run --dry-run", data, lines[:-3] + claim + lines[-3:])  # the command stays last
