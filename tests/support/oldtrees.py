"""Single-instance trees as users have them, for migration tests and bench/migrate.py, and a
manifest written independently of comfy-init's own, to judge what a migration did."""

import hashlib
import os
import sqlite3
import stat

SPARSE_SIZE = 1 << 30  # a 1 GiB model that takes no disk


def _write(path, data=b"", mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(data)
    if mode is not None:
        os.chmod(path, mode)


def fill(root, *, unicode_names=True, sparse=True):
    """The folders of a ComfyUI base directory at `root`, with what migrations lose elsewhere:
    dotfiles, relative and absolute links, hard links, empty directories, odd names, a SQLite
    database, a file nobody may read, a large sparse file, and temp (which is not carried)."""
    _write(f"{root}/models/checkpoints/sd15.safetensors", b"model-bytes" * 100)
    if sparse:
        with open(f"{root}/models/checkpoints/big.safetensors", "wb") as file:
            file.truncate(SPARSE_SIZE)
    _write(f"{root}/models/loras/.hidden-index", b"dot")
    if unicode_names:
        _write(f"{root}/models/loras/ünïcödé 名前 (v2).safetensors", b"lora")
        _write(f"{root}/models/loras/tab\tand space.safetensors", b"odd")
    os.makedirs(f"{root}/models/vae", exist_ok=True)
    os.symlink("../checkpoints/sd15.safetensors", f"{root}/models/vae/alias.safetensors")
    _write(f"{root}/custom_nodes/node-a/.git/HEAD", b"ref: refs/heads/main\n")
    _write(f"{root}/custom_nodes/node-a/__init__.py", b"NODE_CLASS_MAPPINGS = {}\n")
    os.symlink("../../models/checkpoints", f"{root}/custom_nodes/node-a/checkpoints")
    os.symlink("/nonexistent/absolute/target", f"{root}/custom_nodes/dangling-absolute")
    _write(f"{root}/custom_nodes/.disabled/old.py", b"x")
    _write(f"{root}/user/default/comfy.settings.json", b'{"Comfy.Theme": "dark"}')
    _write(f"{root}/user/default/workflows/flow.json", b'{"nodes": []}')
    with sqlite3.connect(f"{root}/user/comfyui.db") as database:
        database.execute("CREATE TABLE t (x)")
        database.execute("INSERT INTO t VALUES (42)")
    database.close()
    _write(f"{root}/output/ComfyUI_00001_.png", b"png")
    os.link(f"{root}/output/ComfyUI_00001_.png", f"{root}/output/hard-link.png")
    os.makedirs(f"{root}/output/empty-folder")
    _write(f"{root}/output/private.png", b"secret", mode=0)
    _write(f"{root}/input/example.png", b"in")
    _write(f"{root}/temp/preview.png", b"tmp")


def build(data, kind):
    """A tree of `kind` (compat, per-folder, checkout) under the data directory `data`; returns the
    folder that holds the old layout."""
    root = {"compat": f"{data}/comfy", "per-folder": data, "checkout": f"{data}/ComfyUI"}[kind]
    os.makedirs(root, exist_ok=True)
    fill(root)
    if kind == "checkout":
        _write(f"{root}/main.py", b"print('ComfyUI')\n")
        _write(f"{root}/extra_model_paths.yaml", b"comfyui:\n  base_path: /somewhere/else\n")
    return root


def _content(path, info):
    if stat.S_ISLNK(info.st_mode):
        try:
            aim = os.stat(path).st_ino
        except OSError:
            aim = None
        return ("link", os.readlink(path) if os.path.isabs(os.readlink(path)) else None, aim)
    if stat.S_ISREG(info.st_mode):
        if info.st_size > 1 << 20:
            return ("file", info.st_size, info.st_mtime_ns)
        with open(path, "rb") as file:
            return ("file", info.st_size, info.st_mtime_ns, hashlib.sha256(file.read()).hexdigest())
    return ("dir",)


def manifest(root, *, exact_links=False):
    """{path relative to root: (mode, uid, gid, inode for non-directories, content)}. Links are
    judged by what they resolve to (the inode) unless `exact_links` (then by their text)."""
    entries = {}
    for directory, dirs, files in os.walk(root):
        for name in [""] + dirs + files:
            path = os.path.join(directory, name) if name else directory
            info = os.lstat(path)
            content = _content(path, info)
            if exact_links and content[0] == "link":
                content = ("link", os.readlink(path))
            # A link is judged by its text (`exact_links`) or by what it reaches, never by its inode:
            # a rewritten link is a new one.
            inode = None if stat.S_ISDIR(info.st_mode) or content[0] == "link" else info.st_ino
            entries[os.path.relpath(path, root)] = (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                                                    inode, content)
    return entries


def old_manifests(root, folders=("models", "custom_nodes", "user", "output", "input", "temp")):
    return {name: manifest(os.path.join(root, name), exact_links=True) for name in folders
            if os.path.isdir(os.path.join(root, name))}


def resolved_manifests(root, folders=("models", "custom_nodes", "user", "output", "input", "temp")):
    return {name: manifest(os.path.join(root, name)) for name in folders if os.path.isdir(os.path.join(root, name))}
