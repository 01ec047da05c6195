"""The configuration: every environment variable comfy-init reads, parsed and checked once.

`load_config(environ)` returns an immutable `Config` or raises `ConfigError` listing every bad
value at once, one line per variable, so a user fixes their compose file in one go. Nothing on
disk is looked at here: validation happens before anything is touched.

This module is on the start-up path of PID 1: standard library only, no heavy imports. The value
classes here and in the other start-up modules are plain classes with __slots__, not dataclasses:
importing dataclasses pulls in inspect, about 4 ms, an eighth of the whole start-up.
"""

import os
import re
import shlex
import sys

from comfy_init.errors import ConfigError

INSTANCE_ID_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# What a --listen value may hold: IPv4/IPv6 addresses or host names, comma separated.
LISTEN_PATTERN = re.compile(r"^[0-9A-Za-z.:_-]+(,[0-9A-Za-z.:_-]+)*$")

DEVICES = ("auto", "cuda", "cpu")
RECOVERY_MODES = ("backup", "reset")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

# In compatibility mode the claim needs a name even when COMFY_INSTANCE_ID is unset.
COMPAT_INSTANCE_ID = "comfy"
DEFAULT_APP_DIRECTORY = "/opt/comfyui"
DEFAULT_DATA_DIRECTORY = "/data"


def _shown(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Config:
    """The resolved configuration. Immutable: build a new one with `load_config`."""

    __slots__ = (
        "multi_instance", "instance_id", "data_dir", "shared_dir", "instance_dir", "base_dir",
        "app_dir", "port", "listen", "device", "cuda_device", "cli_args", "puid", "pgid",
        "stop_timeout", "python", "registry_recover", "claim_lease",
    )

    def __init__(self, **values):
        for name in self.__slots__:
            object.__setattr__(self, name, values.pop(name))
        if values:
            raise TypeError(f"unknown configuration fields: {sorted(values)}")

    def __setattr__(self, name, value):
        raise AttributeError("Config is immutable")

    @property
    def meta_dir(self):
        return os.path.join(self.data_dir, "meta")

    @property
    def claim_renew_interval(self):
        """Renew three times per lease, so one late renewal never loses the claim."""
        return self.claim_lease / 3.0

    def as_dict(self):
        values = {name: getattr(self, name) for name in self.__slots__}
        values["cli_args"] = list(self.cli_args)
        values["meta_dir"] = self.meta_dir
        return values


class _Reader:
    """Reads variables from one environment mapping and collects every problem."""

    def __init__(self, environ):
        self.environ = environ
        self.problems = []

    def raw(self, name):
        value = self.environ.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def fail(self, name, value, rule, example):
        self.problems.append(f"{name}={_shown(value)}: {rule}, e.g. {name}={example}")

    def boolean(self, name, default):
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in TRUE_WORDS:
            return True
        if value.lower() in FALSE_WORDS:
            return False
        self.fail(name, value, "must be true or false", "true")
        return default

    def choice(self, name, choices, default):
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in choices:
            return value.lower()
        self.fail(name, value, f"must be one of {', '.join(choices)}", choices[0])
        return default

    def integer(self, name, low, high, example, default=None):
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value, 10)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            self.fail(name, value, f"must be an integer from {low} to {high}", example)
            return default
        return number

    def seconds(self, name, low, high, default, example):
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is None or number != number or not low <= number <= high:
            self.fail(name, value, f"must be a number of seconds from {low:g} to {high:g}", example)
            return default
        return number

    def path(self, name, default):
        value = self.raw(name)
        if value is None:
            return default
        if not os.path.isabs(value):
            self.fail(name, value, "must be an absolute path", default or "/data")
            return default
        return os.path.normpath(value)


# comfy-init itself must know where ComfyUI listens (port check, readiness, health, registry), so
# these come only from COMFY_PORT / COMFY_LISTEN, never from ComfyUI arguments.
RESERVED_ARGUMENTS = {"--port": "COMFY_PORT", "--listen": "COMFY_LISTEN"}


def reserved_argument_problems(arguments):
    """One line per ComfyUI argument that comfy-init must own, with the variable to use instead."""
    problems = []
    for argument in arguments:
        flag = argument.split("=", 1)[0]
        if flag in RESERVED_ARGUMENTS:
            problems.append(f"{flag} must not be given to ComfyUI directly: comfy-init checks, probes and "
                            f"registers that value; set {RESERVED_ARGUMENTS[flag]} instead")
    return problems


def load_config(environ=None):
    """Parse `environ` (default: os.environ) into a Config, or raise ConfigError with every problem."""
    env = _Reader(os.environ if environ is None else environ)

    multi = env.boolean("COMFY_MULTI_INSTANCE", False)
    instance_id = env.raw("COMFY_INSTANCE_ID")
    if instance_id is not None and not INSTANCE_ID_PATTERN.match(instance_id):
        env.fail("COMFY_INSTANCE_ID", instance_id,
                 "must be a DNS label: 1-63 lower-case letters, digits or '-', "
                 "starting and ending with a letter or digit", "core-1")
        instance_id = None
    elif instance_id is None and multi:
        env.problems.append(
            "COMFY_INSTANCE_ID is not set: multi-instance mode (COMFY_MULTI_INSTANCE=true) needs "
            "one id per container, e.g. COMFY_INSTANCE_ID=core-1")

    data_dir = env.path("COMFY_DATA_DIRECTORY", DEFAULT_DATA_DIRECTORY)
    shared_dir = env.path("COMFY_SHARED_DIRECTORY", os.path.join(data_dir, "shared"))
    if multi:
        instance_dir = env.path(
            "COMFY_INSTANCE_DIRECTORY",
            os.path.join(data_dir, "instances", instance_id or "<COMFY_INSTANCE_ID>"))
        base_dir = env.path("COMFY_BASE_DIRECTORY", instance_dir)
        if base_dir != instance_dir:
            # The instance's folders and links are made in the instance directory; a different base
            # would point ComfyUI at an empty folder.
            env.fail("COMFY_BASE_DIRECTORY", env.raw("COMFY_BASE_DIRECTORY"),
                     f"must be the instance directory in multi-instance mode ({instance_dir}); "
                     "move the instance with COMFY_INSTANCE_DIRECTORY instead", instance_dir)
    else:
        instance_dir = None
        base_dir = env.path("COMFY_BASE_DIRECTORY", os.path.join(data_dir, "comfy"))
    app_dir = env.path("COMFY_APP_DIRECTORY", DEFAULT_APP_DIRECTORY)

    port = env.integer("COMFY_PORT", 1, 65535, "8188", default=8188)
    listen = env.raw("COMFY_LISTEN") or "0.0.0.0"
    if not LISTEN_PATTERN.match(listen):
        env.fail("COMFY_LISTEN", listen, "must be an address or a comma-separated list of addresses",
                 "0.0.0.0")
    device = env.choice("COMFY_DEVICE", DEVICES, "auto")
    cuda_device = env.integer("COMFY_CUDA_DEVICE", 0, 1023, "0")
    if cuda_device is not None and device == "cpu":
        env.problems.append(
            f"COMFY_CUDA_DEVICE={_shown(env.raw('COMFY_CUDA_DEVICE'))}: conflicts with COMFY_DEVICE='cpu'; "
            "unset COMFY_CUDA_DEVICE or set COMFY_DEVICE=cuda")

    cli_args = ()
    raw_cli_args = env.environ.get("CLI_ARGS", "")
    try:
        cli_args = tuple(shlex.split(raw_cli_args))
    except ValueError as error:
        env.fail("CLI_ARGS", raw_cli_args, f"cannot be split like a shell line ({error})",
                 "'--preview-method auto'")
    for problem in reserved_argument_problems(cli_args):
        env.fail("CLI_ARGS", raw_cli_args, problem, "'--preview-method auto'")

    puid = env.integer("PUID", 0, 2**31 - 1, "1000")
    pgid = env.integer("PGID", 0, 2**31 - 1, "1000")
    if pgid is not None and puid is None and env.raw("PUID") is None:
        env.problems.append(
            f"PGID={_shown(env.raw('PGID'))}: is set without PUID; set both, e.g. PUID=1000 PGID=1000")
    if puid is not None and pgid is None and env.raw("PGID") is None:
        pgid = puid

    stop_timeout = env.seconds("COMFY_STOP_TIMEOUT", 0, 3600, 8.0, "8")
    python = env.raw("COMFY_PYTHON") or sys.executable
    registry_recover = env.choice("COMFY_REGISTRY_RECOVER", RECOVERY_MODES, None)
    claim_lease = env.seconds("COMFY_CLAIM_LEASE", 0.3, 3600, 30.0, "30")

    if env.problems:
        raise ConfigError(*env.problems)

    return Config(
        multi_instance=multi,
        instance_id=instance_id or COMPAT_INSTANCE_ID,
        data_dir=data_dir,
        shared_dir=shared_dir,
        instance_dir=instance_dir,
        base_dir=base_dir,
        app_dir=app_dir,
        port=port,
        listen=listen,
        device=device,
        cuda_device=cuda_device,
        cli_args=cli_args,
        puid=puid,
        pgid=pgid,
        stop_timeout=stop_timeout,
        python=python,
        registry_recover=registry_recover,
        claim_lease=claim_lease,
    )
