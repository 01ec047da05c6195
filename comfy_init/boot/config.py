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

from comfy_init.boot.isolation import argument_path_problems, setting_overlap_problems
from comfy_init.comfyui.command import owned_argument_problems
from comfy_init.errors import ComfyInitError, ConfigError
from comfy_init.layout import COMPAT_INSTANCE_ID, INSTANCE_ID_PATTERN, OWNER_NAME, Layout
from comfy_init.problems import Problem, is_control
from comfy_init.store.files import read_regular


DEVICES = ("auto", "cuda", "cpu")
# COMFY_VENV: auto = on when COMFY_PYTHON's prefix holds an image build file (the images), off otherwise.
VENV_MODES = ("auto", "on", "off")
MANAGER_MODES = ("auto", "on", "off")  # as comfy_init.comfyui.manager.MODES
# COMFY_ASSETS: "default" leaves the release's own choice; off -> --disable-assets; hash ->
# --enable-asset-hashing (which releases take them: comfy_init/comfyui/releases.py).
ASSETS_MODES = ("default", "off", "hash")
MAX_CUDA_DEVICE = 1023
RECOVERY_MODES = ("backup", "reset")  # as comfy_init.store.registry.RECOVERY_MODES (not imported: start-up cost)
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

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
        "stop_timeout", "python", "registry_recover", "claim_lease", "layout", "instance",
        "watch_interval", "venv", "manager", "assets",
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
        return self.layout.meta

    @property
    def claim_renew_interval(self):
        """Renew three times per lease, so one late renewal never loses the claim."""
        return self.claim_lease / 3.0

    def as_dict(self):
        values = {name: getattr(self, name) for name in self.__slots__ if name not in ("layout", "instance")}
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
        self.problems.append(Problem("bad-setting", f"{name}={_shown(value)}: {rule}", fix=f"e.g. {name}={example}"))

    def add(self, message, fix=None):
        self.problems.append(Problem("bad-setting", message, fix=fix))

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
        if any(map(is_control, value)):
            self.fail(name, value, "must not hold control characters (a newline, a tab)", default or "/data")
            return default
        if not os.path.isabs(value):
            self.fail(name, value, "must be an absolute path", default or "/data")
            return default
        return os.path.normpath(value)


_HOST_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_PATTERN = re.compile(rf"^{_HOST_LABEL}(\.{_HOST_LABEL})*\.?$")


def _listen_address_problem(part):
    """Why one address of COMFY_LISTEN is not an IPv4/IPv6 address or a host name; None if it is."""
    import socket

    if ":" in part:
        family = socket.AF_INET6
    elif part.replace(".", "").isdigit():
        family = socket.AF_INET
    elif len(part) <= 253 and HOSTNAME_PATTERN.match(part):
        return None
    else:
        return f"{part[:40]!r} is not an IP address or a host name"
    try:
        socket.inet_pton(family, part)
    except (OSError, ValueError):
        return f"{part[:40]!r} is not a valid IPv{'6' if family == socket.AF_INET6 else '4'} address"
    return None


def _find_executable(name, environ):
    """The path `name` runs as (searched in PATH when it has no slash), or None."""
    if "/" in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    for directory in environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def load_config(environ=None):
    """Parse `environ` (default: os.environ) into a Config, or raise ConfigError with every problem."""
    env = _Reader(os.environ if environ is None else environ)
    multi = env.boolean("COMFY_MULTI_INSTANCE", False)
    instance_id = _instance_id(env, multi)
    paths = _paths(env, multi, instance_id)
    port = env.integer("COMFY_PORT", 1, 65535, "8188", default=8188)
    listen = _listen(env)
    device = env.choice("COMFY_DEVICE", DEVICES, "auto")
    cuda_device = _cuda_device(env)
    if cuda_device is not None and device == "cpu":
        env.add(f"COMFY_CUDA_DEVICE={_shown(env.raw('COMFY_CUDA_DEVICE'))}: conflicts with COMFY_DEVICE='cpu'",
                "unset COMFY_CUDA_DEVICE or set COMFY_DEVICE=cuda")
    cli_args = _cli_args(env, multi, paths)
    puid, pgid = _user(env)
    stop_timeout = env.seconds("COMFY_STOP_TIMEOUT", 0, 3600, 8.0, "8")
    python = env.raw("COMFY_PYTHON") or sys.executable
    if env.raw("COMFY_PYTHON") is not None and _find_executable(python, env.environ) is None:
        env.fail("COMFY_PYTHON", python, "is not an executable file (nor found in PATH)", "/opt/venv/bin/python")
    registry_recover = env.choice("COMFY_REGISTRY_RECOVER", RECOVERY_MODES, None)
    claim_lease = env.seconds("COMFY_CLAIM_LEASE", 0.3, 3600, 30.0, "30")
    # How often the running comfy-init re-checks the isolation invariants and its claim (boot.watch);
    # 0 turns the watch off.
    watch_interval = env.seconds("COMFY_WATCH_INTERVAL", 0, 86400, 60.0, "60")
    venv = env.choice("COMFY_VENV", VENV_MODES, "auto")
    # ComfyUI-Manager 4: --enable-manager when the release declares it and the package is there (auto).
    manager = env.choice("COMFY_MANAGER", MANAGER_MODES, "auto")
    assets = env.choice("COMFY_ASSETS", ASSETS_MODES, "default")
    if env.problems:
        raise ConfigError(*env.problems)
    return Config(
        multi_instance=multi, instance_id=paths["instance"].id, **paths, port=port, listen=listen,
        device=device, cuda_device=cuda_device, cli_args=cli_args, puid=puid, pgid=pgid,
        stop_timeout=stop_timeout, python=python, registry_recover=registry_recover, claim_lease=claim_lease,
        watch_interval=watch_interval, venv=venv, manager=manager, assets=assets)


def _cuda_device(env):
    """COMFY_CUDA_DEVICE as ComfyUI's --cuda-device takes it: `0`, `0,1` or `all` (a string), or
    None. Whether the checkout's release takes a list or `all` is checked by the plan, which has
    probed the checkout; here only the form is."""
    value = env.raw("COMFY_CUDA_DEVICE")
    if value is None:
        return None
    if value.lower() == "all":
        return "all"
    parts = [part.strip() for part in value.split(",")]
    numbers = [int(part) for part in parts if part.isdigit() and part.isascii()]
    if len(numbers) != len(parts) or max(numbers) > MAX_CUDA_DEVICE or len(set(numbers)) != len(numbers):
        env.fail("COMFY_CUDA_DEVICE", value, f"must be a GPU number from 0 to {MAX_CUDA_DEVICE}, "
                 "distinct numbers separated by commas (releases after 0.3.64), or all", "0")
        return None
    return ",".join(str(number) for number in numbers)


def cuda_devices(cuda_device):
    """The GPU ids of a COMFY_CUDA_DEVICE value (["0", "1"]), or None for unset or `all`."""
    return None if cuda_device in (None, "all") else cuda_device.split(",")


def _instance_id(env, multi):
    instance_id = env.raw("COMFY_INSTANCE_ID")
    if instance_id is not None and not INSTANCE_ID_PATTERN.match(instance_id):
        env.fail("COMFY_INSTANCE_ID", instance_id,
                 "must be a DNS label: 1-63 lower-case letters, digits or '-', "
                 "starting and ending with a letter or digit", "core-1")
        return None
    if instance_id is None and multi:
        env.add("COMFY_INSTANCE_ID is not set: multi-instance mode (COMFY_MULTI_INSTANCE=true) needs "
                "one id per container", "e.g. COMFY_INSTANCE_ID=core-1")
    elif instance_id == COMPAT_INSTANCE_ID and multi:
        env.fail("COMFY_INSTANCE_ID", instance_id, f"{COMPAT_INSTANCE_ID!r} is reserved for compatibility "
                 "mode (the old single-instance layout claims under that name)", "core-1")
        return None
    return instance_id


def _migrated_claim(env, layout, base_dir, instance_id):
    """The id compatibility mode claims. A tree `comfy-init migrate` moved keeps its old folders as
    links into instances/<id>/ and names that id in <base>/.comfy-init-instance: compatibility mode
    then claims that id, so it and a multi-instance start of the instance never run at once."""
    owner_file = layout.compat_instance(base_dir).owner_file
    try:
        found = read_regular(owner_file)
    except ComfyInitError:
        found = None  # not a file comfy-init wrote: the tree's planner reports what stands there
    if found is None:
        return instance_id
    owner = found.decode("utf-8", "replace").strip()
    if not INSTANCE_ID_PATTERN.match(owner):
        env.add(f"{owner_file}: names {owner[:63]!r}, which is not an instance id",
                "write the id of the instance the old layout was migrated to into it, or remove it")
        return instance_id
    if instance_id is not None and instance_id != owner:
        env.fail("COMFY_INSTANCE_ID", instance_id, f"the old layout at {base_dir} was migrated to instance "
                 f"{owner!r} (its {OWNER_NAME} says so), and compatibility mode claims that id", owner)
    return owner


def _paths(env, multi, instance_id):
    """The tree's paths from the settings, checked for overlaps once each is valid on its own."""
    data_dir = env.path("COMFY_DATA_DIRECTORY", DEFAULT_DATA_DIRECTORY)
    shared_dir = env.path("COMFY_SHARED_DIRECTORY", os.path.join(data_dir, "shared"))
    layout = Layout(data_dir, shared_dir)
    if multi:
        instance_dir = env.path("COMFY_INSTANCE_DIRECTORY",
                                layout.instance(instance_id or "<COMFY_INSTANCE_ID>").root)
        base_dir = env.path("COMFY_BASE_DIRECTORY", instance_dir)
        if base_dir != instance_dir:
            # The instance's folders and links are made in the instance directory; a different base
            # would point ComfyUI at an empty folder.
            env.fail("COMFY_BASE_DIRECTORY", env.raw("COMFY_BASE_DIRECTORY"),
                     f"must be the instance directory in multi-instance mode ({instance_dir}); "
                     "move the instance with COMFY_INSTANCE_DIRECTORY instead", instance_dir)
        instance = layout.instance(instance_id or COMPAT_INSTANCE_ID, instance_dir)
    else:
        instance_dir = None
        base_dir = env.path("COMFY_BASE_DIRECTORY", layout.compat_base)
        instance = layout.compat_instance(base_dir, _migrated_claim(env, layout, base_dir, instance_id))
    app_dir = env.path("COMFY_APP_DIRECTORY", DEFAULT_APP_DIRECTORY)
    if not env.problems:
        env.problems.extend(setting_overlap_problems(layout, instance, app_dir, multi=multi, environ=env.environ))
    return {"data_dir": data_dir, "shared_dir": shared_dir, "instance_dir": instance_dir, "base_dir": base_dir,
            "app_dir": app_dir, "layout": layout, "instance": instance}


def _listen(env):
    listen = env.raw("COMFY_LISTEN") or "0.0.0.0"
    for part in listen.split(","):
        why = _listen_address_problem(part.strip())
        if why:
            env.fail("COMFY_LISTEN", listen, f"must be an address or a comma-separated list of addresses: {why}",
                     "0.0.0.0")
            break
    return listen


def _cli_args(env, multi, paths):
    raw = env.environ.get("CLI_ARGS", "")
    try:
        cli_args = tuple(shlex.split(raw))
    except ValueError as error:
        env.fail("CLI_ARGS", raw, f"cannot be split like a shell line ({error})", "'--preview-method auto'")
        return ()
    source = f"CLI_ARGS={_shown(raw)}"
    env.problems.extend(owned_argument_problems(cli_args, source))
    if multi:
        env.problems.extend(argument_path_problems(paths["layout"], paths["instance"], cli_args, source,
                                                   paths["app_dir"]))
    return cli_args


def _user(env):
    puid = env.integer("PUID", 0, 2**31 - 1, "1000")
    pgid = env.integer("PGID", 0, 2**31 - 1, "1000")
    if pgid is not None and puid is None and env.raw("PUID") is None:
        env.add(f"PGID={_shown(env.raw('PGID'))}: is set without PUID", "set both, e.g. PUID=1000 PGID=1000")
    if puid is not None and pgid is None and env.raw("PGID") is None:
        pgid = puid
    return puid, pgid
