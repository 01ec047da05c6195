"""Instances worth snapshotting, and trees compared the way a snapshot's manifest describes them:
shared by tests/ops/test_snapshots*.py, tests/cli/test_snapshot_commands.py and bench/snapshot.py."""

import json
import os
import stat
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import blake3
import zstandard

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def git(*args, cwd=None):
    env = dict(os.environ, **GIT_ENV)
    return subprocess.run(["git", "-c", "init.defaultBranch=main", "-c", "safe.directory=*", *args], cwd=cwd,
                          env=env, check=True, capture_output=True, text=True).stdout.strip()


def git_node(custom_nodes: Path, remotes: Path, name: str, files: dict) -> dict:
    """A custom node that is a git checkout of a local bare repository (its file:// remote)."""
    source = remotes / f"{name}-src"
    source.mkdir(parents=True)
    for relative, text in files.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_text(text)
    git("init", "-q", cwd=source)
    git("add", "-A", cwd=source)
    git("commit", "-q", "-m", "first", cwd=source)
    bare = remotes / f"{name}.git"
    git("clone", "-q", "--bare", str(source), str(bare))
    url = f"file://{bare}"
    git("clone", "-q", url, str(custom_nodes / name))
    return {"path": f"custom_nodes/{name}", "remote": url, "commit": git("rev-parse", "HEAD", cwd=custom_nodes / name)}


def populate(instance: Path, remotes: Path) -> list[dict]:
    """Custom nodes (two git checkouts, one plain), settings, workflows, dotfiles, symlinks inside
    custom_nodes, unicode names, odd modes; returns the git nodes."""
    nodes = instance / "custom_nodes"
    found = [git_node(nodes, remotes, "ComfyUI-Alpha", {"__init__.py": "NODE_CLASS_MAPPINGS = {}\n",
                                                        "js/alpha.js": "export {}\n"}),
             git_node(nodes, remotes, "beta-nodes", {"__init__.py": "# beta\n", "requirements.txt": "numpy\n"})]
    plain = nodes / "plain_node"
    (plain / "data").mkdir(parents=True)
    (plain / "__init__.py").write_text("print('plain')\n")
    (plain / "data" / "weights.bin").write_bytes(os.urandom(70_000))
    (plain / ".env").write_text("TOKEN=x\n")
    (plain / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (plain / "run.sh").chmod(0o755)
    (plain / "read-only.txt").write_text("ro\n")
    (plain / "read-only.txt").chmod(0o444)
    (plain / "latest").symlink_to("data/weights.bin")
    (plain / "dangling").symlink_to("data/not-there")
    (plain / "up").symlink_to("../ComfyUI-Alpha")
    (nodes / ".hidden-node").mkdir()
    (nodes / ".hidden-node" / "ünïcødé — ノード.py").write_text("# unicode\n")
    user = instance / "user" / "default"
    (user / "workflows").mkdir(parents=True, exist_ok=True)
    (user / "comfy.settings.json").write_text(json.dumps({"Comfy.ColorPalette": "dark"}))
    (user / "workflows" / "портрет 🎨.json").write_text(json.dumps({"nodes": []}))
    (user / "workflows" / ".index.json").write_text("[]")
    (instance / "user" / "__manager").mkdir(exist_ok=True)
    (instance / "user" / "__manager" / "config.ini").write_text("[default]\nsecurity_level = normal\n")
    (instance / "output" / "ComfyUI_00001_.png").write_bytes(os.urandom(5000))
    (instance / "temp" / "scratch.tmp").write_bytes(b"temp is never archived")
    return found


def tree_entries(instance: Path, folders=("custom_nodes", "user")) -> dict:
    """{relative path: (type, mode, size, blake3, link target)} for the folders, as a manifest has them."""
    entries = {}
    for top in folders:
        for directory, names, files in os.walk(instance / top):
            for name in [""] + names + files:
                path = Path(directory, name) if name else Path(directory)
                entries[str(path.relative_to(instance))] = describe(path)
    return entries


def describe(path: Path):
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return ("symlink", None, None, None, os.readlink(path))
    if stat.S_ISDIR(info.st_mode):
        return ("dir", stat.S_IMODE(info.st_mode), None, None, None)
    digest = blake3.blake3(path.read_bytes()).hexdigest()
    return ("file", stat.S_IMODE(info.st_mode), info.st_size, digest, None)


def manifest_entries(manifest: dict) -> dict:
    return {e["path"]: (e["type"], e.get("mode") if e["type"] != "symlink" else None, e.get("size"),
                        e.get("blake3"), e.get("target")) for e in manifest["entries"]}


def whole_tree(root: Path) -> dict:
    """Every entry under `root` (links not followed): what "exactly old or exactly new" compares."""
    if not os.path.lexists(root):
        return {}
    entries = {".": describe(root)}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory, name)
            entries[str(path.relative_to(root))] = describe(path)
    return entries


def write_archive(path: Path, members, *, compress=True):
    """A hand-made archive: `members` are (TarInfo, bytes or None)."""
    with open(path, "wb") as raw:
        stream = zstandard.ZstdCompressor().stream_writer(raw, closefd=False) if compress else raw
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for member, data in members:
                if data is not None:
                    member.size = len(data)
                    import io

                    tar.addfile(member, io.BytesIO(data))
                else:
                    tar.addfile(member)
        if compress:
            stream.close()


def member(name, kind=tarfile.REGTYPE, *, mode=0o644, linkname="", data=b""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, linkname, 1_700_000_000
    return info, (data if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else None)


WRITER = textwrap.dedent("""
    import fcntl, os, sqlite3, sys, time
    lock_path, database = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)  # what a running comfy-init holds for its instance
    db = sqlite3.connect(database, isolation_level=None)
    db.execute("pragma journal_mode=wal")
    db.execute("create table if not exists assets (id integer primary key, blob blob)")
    for i in range(200):
        db.execute("insert into assets (blob) values (randomblob(2000))")
    print("ready", flush=True)
    while True:
        db.execute("begin")
        db.execute("insert into assets (blob) values (randomblob(2000))")
        db.execute("delete from assets where id % 7 = 0 and id < (select max(id) - 100 from assets)")
        db.execute("commit")
""")


def start_live_writer(lock_path: Path, database: Path):
    """A process that holds the instance's lock (as a running comfy-init does) and writes the
    database without pause, in WAL mode."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(lock_path), str(database)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process
