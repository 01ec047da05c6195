"""What an image build is, as one small JSON file: the ComfyUI release, torch's versions and CUDA,
the Python ABI, where the image's packages are, and the versions an instance environment must never
replace (torch and the image's `==` pins).

Written once at image build (`python -m comfy_init.venv.buildinfo --write /opt/venv/comfy-init-build.json`)
and read on every start. Also run as a plain script by a base interpreter that has no comfy_init
(a host run without that file): standard library only, and no comfy_init import.
"""

import json
import os
import re
import sys

FORMAT = 1
# Never replaced by an install into an instance environment, whatever the image pins besides.
ALWAYS_PROTECTED = ("torch", "torchvision", "torchaudio")
# The fields that decide whether an environment made for one build works with another.
# packages_digest: every distribution of the image at its version, so that an image with other
# packages (core and complete, a rebuild that pulled newer ones) is another build.
IDENTITY = ("comfyui", "torch", "torchvision", "torchaudio", "cuda", "python_abi", "site_packages",
            "packages_digest")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*==\s*([^\s;#,]+)")


def normalize(name):
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions():
    """{normalized name: version} of every distribution this interpreter sees."""
    from importlib import metadata

    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and normalize(name) not in found:
            found[normalize(name)] = dist.version
    return found


def pinned_names(requirement_files):
    """The names pinned with `==` in requirement files (ComfyUI's requirements.txt, ...)."""
    names = []
    for path in requirement_files:
        try:
            with open(path, encoding="utf-8") as file:
                lines = file.read().splitlines()
        except OSError:
            continue
        names += [normalize(match.group(1)) for match in map(_PIN.match, lines) if match]
    return names


def cuda_version(site_packages):
    """torch's CUDA version from torch/version.py, read without importing torch; None for CPU."""
    for directory in site_packages:
        try:
            with open(os.path.join(directory, "torch", "version.py"), encoding="utf-8") as file:
                match = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", file.read(), re.M)
            return match.group(1) if match else None
        except OSError:
            continue
    return None


def comfyui_version(comfyui_dir):
    # As comfy_init.comfyui.checkout reads it; not imported from there: this module also runs as a
    # plain script by an interpreter without comfy_init (see the module's docstring).
    try:
        with open(os.path.join(comfyui_dir, "comfyui_version.py"), encoding="utf-8") as file:
            for line in file:
                if line.startswith("__version__"):
                    return line.split("=", 1)[1].strip().strip("\"'")
    except (OSError, UnicodeDecodeError):
        pass
    return None


def describe(comfyui_dir=None, requirement_files=(), comfyui_ref=None):
    """This interpreter's build, as the dict the build file holds."""
    import sysconfig

    versions = installed_versions()
    paths = sysconfig.get_paths()
    site_packages = sorted({paths["purelib"], paths["platlib"]})
    protected = {name: versions[name] for name in (*ALWAYS_PROTECTED, *pinned_names(requirement_files))
                 if name in versions}
    return {
        "format": FORMAT,
        "comfyui": (comfyui_version(comfyui_dir) if comfyui_dir else None) or comfyui_ref,
        "torch": versions.get("torch"), "torchvision": versions.get("torchvision"),
        "torchaudio": versions.get("torchaudio"), "cuda": cuda_version(site_packages),
        "python_abi": sysconfig.get_config_var("SOABI") or sys.implementation.cache_tag,
        "python_version": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "python": sys.executable, "prefix": sys.prefix, "site_packages": site_packages,
        "purelib_relative": os.path.relpath(paths["purelib"], sys.prefix),
        "protected": dict(sorted(protected.items())),
        "packages": len(versions), "packages_digest": _digest(versions),
    }


def _digest(versions):
    import hashlib

    text = "".join(f"{name}=={version}\n" for name, version in sorted(versions.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description="Describe this interpreter's image build as JSON.")
    parser.add_argument("--comfyui-dir", help="the ComfyUI checkout (its comfyui_version.py)")
    parser.add_argument("--comfyui-ref", help="the release, when the checkout does not say")
    parser.add_argument("--pins", action="append", default=[], help="a requirements file whose == pins are protected")
    parser.add_argument("--write", help="write the JSON here (atomically) instead of printing it")
    options = parser.parse_args(argv)
    text = json.dumps(describe(options.comfyui_dir, options.pins, options.comfyui_ref), indent=2) + "\n"
    if not options.write:
        sys.stdout.write(text)
        return 0
    temporary = f"{options.write}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, options.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
