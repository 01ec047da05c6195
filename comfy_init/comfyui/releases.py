"""Which ComfyUI release understands what: the one table the checkout probe reads.

A feature is found by its quoted flag name in comfy/cli_args.py, never by comparing version
numbers: forks, nightlies and checkouts between tags then get what their source really declares.
`since` is the first release we know has it (for the docs, docs/comfyui-releases.md); the probe
does not use it.
"""

# (Checkout field, flag as declared in comfy/cli_args.py, first release known to have it)
FLAG_FEATURES = (
    ("base_directory", "--base-directory", "0.3.13"),
    ("database_url", "--database-url", "0.3.2x"),
    ("user_directory", "--user-directory", "0.2"),
    ("input_directory", "--input-directory", "0.1"),
    ("models_directory", "--models-directory", "after 0.3.64"),
    ("enable_manager", "--enable-manager", "after 0.3.64"),
    ("disable_assets", "--disable-assets", "after 0.3.64"),
    ("asset_hashing", "--enable-asset-hashing", "after 0.3.64"),
)

CUDA_DEVICE_FLAG = "--cuda-device"


def flag_declared(source, flag):
    """True when `source` (the text of comfy/cli_args.py) declares `flag`: every release declares a
    flag as the quoted string `"--name"` in its add_argument call."""
    return f'"{flag}"' in source


def cuda_device_takes_a_list(source):
    """True when the release's --cuda-device takes `0,1` or `all`. Releases up to 0.3.64 declare it
    with `type=int` (a list is an argparse error, exit 2); newer ones take a string."""
    quoted = f'"{CUDA_DEVICE_FLAG}"'
    for line in source.splitlines():
        if quoted in line:
            return "type=int" not in line.replace(" ", "")
    return False


def features_of(source):
    """{Checkout field: bool} for every feature of the table, from the text of comfy/cli_args.py.
    Commented-out lines do not count: a fork that turned a flag off that way rejects it."""
    source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    found = {field: flag_declared(source, flag) for field, flag, _since in FLAG_FEATURES}
    found["cuda_device_list"] = cuda_device_takes_a_list(source)
    return found
