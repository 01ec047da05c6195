"""The exact command line that starts ComfyUI, and the ComfyUI flags that comfy-init owns.

comfy-init must know where ComfyUI listens (port check, readiness, health, registry), so --port and
--listen come only from COMFY_PORT / COMFY_LISTEN. The flags that decide where an instance reads
and writes (PATH_FLAGS) are checked against the data tree by comfy_init.boot.isolation. ComfyUI's
argparse accepts any unambiguous prefix of a flag (`--por 8497`), so prefixes count as the flag.
"""

from comfy_init.problems import Problem

OWNED_EVERYWHERE = {"--port": "COMFY_PORT", "--listen": "COMFY_LISTEN"}
PATH_FLAGS = ("--base-directory", "--output-directory", "--temp-directory", "--user-directory",
              "--input-directory", "--models-directory", "--database-url")
# argparse needs at least `--` and one letter; a shorter prefix is ambiguous anyway.
_SHORTEST_PREFIX = 3


def flag_named(argument, flags):
    """The flag of `flags` that `argument` names (itself or a prefix of it, with or without =value),
    or None."""
    if not argument.startswith("--"):
        return None
    given = argument.split("=", 1)[0]
    if len(given) < _SHORTEST_PREFIX:
        return None
    for flag in flags:
        if flag.startswith(given):
            return flag
    return None


def flag_values(arguments, flags):
    """(flag, value, as given) for every argument naming one of `flags`; value None when missing."""
    found = []
    for index, argument in enumerate(arguments):
        flag = flag_named(argument, flags)
        if flag is None:
            continue
        if "=" in argument:
            value = argument.split("=", 1)[1]
        else:
            value = arguments[index + 1] if index + 1 < len(arguments) else None
        found.append((flag, value, argument.split("=", 1)[0]))
    return found


def owned_argument_problems(arguments, source):
    """One Problem per argument that names --port or --listen; `source` is where it came from
    (CLI_ARGS, or `comfy-init run -- ...`)."""
    problems = []
    for flag, _value, given in flag_values(arguments, OWNED_EVERYWHERE):
        spelled = "" if given == flag else f" ({given!r} abbreviates it)"
        problems.append(Problem(
            "bad-setting", f"{source}: {flag} must not be given to ComfyUI directly{spelled}: comfy-init "
            "checks, probes and registers that value", fix=f"set {OWNED_EVERYWHERE[flag]} instead"))
    return problems


def build_command(*, python, checkout, instance, listen, port, device, cuda_device, arguments,
                  assets="default", manager=False):
    """The argv that starts ComfyUI for `instance` (InstancePaths). `arguments` (CLI_ARGS, then
    those after `--`) come last, so they win. `cuda_device` is `0`, `0,1` or `all` (the plan has
    checked that the release takes it); `assets` is COMFY_ASSETS (default, off, hash); `manager`:
    start ComfyUI-Manager 4 (the pip package), as comfy_init.comfyui.manager decided from COMFY_MANAGER."""
    argv = [python, checkout.main_py, "--listen", listen, "--port", str(port), "--disable-auto-launch"]
    if manager:
        argv.append("--enable-manager")
    if checkout.base_directory:
        argv += ["--base-directory", instance.root]
    if checkout.database_url:
        # One database per instance: ComfyUI exits when a second process opens the same file.
        argv += ["--database-url", "sqlite:///" + instance.database]
    if device == "cpu":
        argv.append("--cpu")
    elif cuda_device is not None:
        argv += ["--cuda-device", str(cuda_device)]
    if assets == "off" and checkout.disable_assets:
        # Releases without the flag have no scan at start to turn off.
        argv.append("--disable-assets")
    elif assets == "hash":
        argv.append("--enable-asset-hashing")
    return argv + list(arguments)
