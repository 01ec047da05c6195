"""Tiny wheels written by hand (a zip with METADATA, WHEEL and RECORD): real packages for real pip,
built without network, setuptools or a build backend."""

import base64
import hashlib
import os
import zipfile


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(directory, name, version, *, requires=(), module_source=None):
    """Write `<name>-<version>-py3-none-any.whl` into `directory`: one module `<name>` (a package
    folder with __init__.py) whose VERSION is `version`. Returns the wheel's path."""
    normal = name.replace("-", "_")
    dist_info = f"{normal}-{version}.dist-info"
    metadata = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                        *(f"Requires-Dist: {r}\n" for r in requires)])
    files = {
        f"{normal}/__init__.py": (module_source or f"VERSION = {version!r}\n").encode(),
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: comfy-init-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [_record_line(path, data) for path, data in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{normal}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path
