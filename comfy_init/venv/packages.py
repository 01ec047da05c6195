"""What an instance environment holds of its own, and what its custom nodes ask for, read from
files: the *.dist-info folders of its own site-packages (no pip call: a moved-aside environment
made for another Python may not even run) and each node's requirements.txt."""

import email.parser
import glob
import os

from comfy_init.venv.buildinfo import normalize

# pip's own packages, which an environment made --without-pip only has when someone installed them.
_TOOLING = ("pip", "setuptools", "wheel")


def site_packages(venv):
    """The environment's own site-packages folders (lib/pythonX.Y/site-packages; any X.Y, so that
    one made for another Python is read too)."""
    return sorted(glob.glob(os.path.join(glob.escape(venv), "lib", "python*", "site-packages")))


def own_packages(venv):
    """[(name, version)] installed into the environment itself (not the image's), sorted."""
    found = {}
    for directory in site_packages(venv):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                head = _metadata(os.path.join(directory, name, "METADATA"))
                if head and head[0]:
                    found.setdefault(normalize(head[0]), head)
    return sorted(found.values(), key=lambda pair: normalize(pair[0]))


def _metadata(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            message = email.parser.Parser().parse(file, headersonly=True)
    except OSError:
        return None
    return message.get("Name"), message.get("Version")


def freeze_lines(venv):
    """`pip freeze` of the environment's own packages: name==version, one per package."""
    return [f"{name}=={version}" for name, version in own_packages(venv)]


def recorded_pins(venv, protected):
    """The pins a rebuild reinstalls from an old environment: its own packages, but neither pip's
    tooling nor what the image protects (a protected pin of another image would refuse itself)."""
    skip = set(_TOOLING) | {normalize(name) for name in protected}
    return [f"{name}=={version}" for name, version in own_packages(venv) if normalize(name) not in skip]


def restored_pins(path, protected):
    """The pins `snapshot restore` left for the next environment (name==version lines), without
    pip's tooling and what the image protects; [] when there is no such file."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = [line.strip() for line in file if "==" in line and not line.startswith("#")]
    except OSError:
        return []
    skip = set(_TOOLING) | {normalize(name) for name in protected}
    return [line for line in lines if normalize(line.split("==", 1)[0]) not in skip]


def node_requirement_files(custom_nodes):
    """custom_nodes/<node>/requirements.txt for every node that has one (one listdir: nodes are few)."""
    try:
        names = sorted(os.listdir(custom_nodes))
    except OSError:
        return []
    files = []
    for name in names:
        path = os.path.join(custom_nodes, name, "requirements.txt")
        if not name.startswith(".") and os.path.isfile(path):
            files.append(path)
    return files
