"""Command line of the stand-in ComfyUI, declared the way ComfyUI declares it.

comfy-init finds out what a ComfyUI release supports by searching this file's text for a flag's
quoted name. Each flag is declared on exactly one line, so deleting that line (tests/support/standin.py
does, to build an older release) really removes the flag: argparse then rejects it with exit 2; the
same helper replaces the --cuda-device line and appends the flags of 0.38 for a newer one.
Do not mention the quoted flag names anywhere else in this file.
"""

import argparse
import os


def is_valid_directory(path):
    """argparse type: an existing directory, as ComfyUI checks --user-directory."""
    if path is None:
        return None
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"'{path}' is not a valid directory.")
    return path


parser = argparse.ArgumentParser(prog="main.py")

parser.add_argument("--listen", type=str, default="127.0.0.1", metavar="IP", nargs="?", const="0.0.0.0,::", help="IP address(es) to listen on, comma separated; the stand-in uses the first.")
parser.add_argument("--port", type=int, default=8188, help="Set the listen port.")
parser.add_argument("--base-directory", type=str, default=None, help="Base directory for models, custom_nodes, input, output, temp and user.")
parser.add_argument("--output-directory", type=str, default=None, help="Set the output directory. Overrides the base directory.")
parser.add_argument("--temp-directory", type=str, default=None, help="Temp lives in <this>/temp. Overrides the base directory.")
parser.add_argument("--input-directory", type=str, default=None, help="Set the input directory. Overrides the base directory.")
parser.add_argument("--user-directory", type=is_valid_directory, default=None, help="Set the user directory (must exist). Overrides the base directory.")
parser.add_argument("--disable-auto-launch", action="store_true", help="Disable auto launching the browser.")
parser.add_argument("--cuda-device", type=int, default=None, metavar="DEVICE_ID", help="The cuda device this instance will use.")

vram_group = parser.add_mutually_exclusive_group()
vram_group.add_argument("--highvram", action="store_true", help="Keep models in GPU memory.")
vram_group.add_argument("--lowvram", action="store_true", help="Split the unet to use less vram.")
vram_group.add_argument("--cpu", action="store_true", help="Use the CPU for everything.")

parser.add_argument("--preview-method", type=str, default="none", choices=["none", "auto", "latent2rgb", "taesd"], help="Default preview method for sampler nodes.")
parser.add_argument("--verbose", default="INFO", const="DEBUG", nargs="?", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], help="Set the logging level.")
parser.add_argument("--disable-all-custom-nodes", action="store_true", help="Disable loading all custom nodes.")
parser.add_argument("--enable-manager", action="store_true", help="Enable ComfyUI-Manager.")
parser.add_argument("--database-url", type=str, default=None, help="Database URL, e.g. sqlite:////abs/path/comfyui.db; default <checkout>/user/comfyui.db.")
