"""What a snapshot holds, and what its manifest says about the instance besides its files.

The walk covers custom_nodes/ and user/ (output/ when asked), never temp/, never the models/ and
input/ links nor anything under shared/. It never follows a link: a link is archived as a link.
FIFOs, sockets and devices are skipped and named in the manifest. The database and its side
files are left to `database_copy` (the online backup API), as are comfy-init's session files.
"""

import os
import stat
import subprocess

from comfy_init.ops.snapshot.archive import TOP_FOLDERS

_DB_SIDE_SUFFIXES = ("-wal", "-shm", "-journal", ".lock")


def walk(instance, include_output):
    """(relative path, absolute path, lstat) for every entry to archive, parents first, sorted;
    and the relative paths skipped (not a file, directory or link)."""
    entries, skipped = [], []
    excluded = _excluded(instance)
    for top in TOP_FOLDERS:
        if top == "output" and not include_output:
            continue
        _walk_one(instance.root, top, entries, skipped, excluded)
    return entries, skipped


def _excluded(instance):
    database = os.path.relpath(instance.database, instance.root)
    session = os.path.relpath(instance.session_file, instance.root)
    return {database, session, session + ".reboot", *(database + suffix for suffix in _DB_SIDE_SUFFIXES)}


def _walk_one(root, top, entries, skipped, excluded):
    stack = [top]
    while stack:
        relative = stack.pop()
        path = os.path.join(root, relative)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue  # gone since its directory was listed (a live instance)
        if relative in excluded:
            continue
        if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
            skipped.append(relative)
            continue
        entries.append((relative, path, info))
        if stat.S_ISDIR(info.st_mode):
            try:
                names = sorted(os.listdir(path), reverse=True)
            except FileNotFoundError:
                continue
            stack.extend(os.path.join(relative, name) for name in names)


def database_copy(instance, temp_path):
    """Copy the instance's SQLite database to `temp_path` with SQLite's online backup API (a
    consistent copy even under a live writer). None when there is no database file; the copy's
    method otherwise."""
    import sqlite3

    database = instance.database
    try:
        info = os.lstat(database)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None  # a link stays a link, archived by the walk
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(temp_path)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    os.chmod(temp_path, info.st_mode & 0o777)
    os.utime(temp_path, ns=(info.st_atime_ns, info.st_mtime_ns))
    return info


def git_checkouts(instance):
    """For every custom node that is a git checkout: its path, remote URL and commit."""
    found = []
    try:
        names = sorted(os.listdir(instance.custom_nodes))
    except OSError:
        return found
    for name in names:
        path = os.path.join(instance.custom_nodes, name)
        if os.path.islink(path) or not os.path.lexists(os.path.join(path, ".git")):
            continue
        commit = _git(path, "rev-parse", "HEAD")
        remote = _git(path, "config", "--get", "remote.origin.url")
        if commit:
            found.append({"path": os.path.join("custom_nodes", name), "remote": remote, "commit": commit,
                          "dirty": bool(_git(path, "status", "--porcelain", "--untracked-files=no"))})
    return found


def _git(path, *args):
    try:
        done = subprocess.run(["git", "-c", "safe.directory=*", "-C", path, *args], capture_output=True,
                              text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def instance_python(instance):
    """The interpreter that runs the instance, when it can be reached from here: the instance's
    own environment, else COMFY_PYTHON. None otherwise (a host shell cannot see a container's)."""
    candidates = [os.path.join(instance.venv, "bin", "python"), os.environ.get("COMFY_PYTHON", "")]
    return next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


def pip_freeze(instance):
    python = instance_python(instance)
    if python is None:
        return None
    try:
        done = subprocess.run([python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return {"python": python, "packages": [line for line in done.stdout.splitlines() if line.strip()]}


def comfyui_version():
    from comfy_init.comfyui.checkout import probe_checkout
    from comfy_init.errors import ComfyInitError

    try:
        return probe_checkout(os.environ.get("COMFY_APP_DIRECTORY", "/opt/comfyui")).version
    except ComfyInitError:
        return None


def manifest_head(instance, name, config, *, live, note, kind, include_output):
    """The manifest without its entries: what the snapshot is of."""
    from comfy_init import __version__
    from comfy_init.store.clock import utc_now

    from comfy_init.ops.snapshot.archive import FORMAT, FORMAT_VERSION

    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": name, "instance": instance.id,
        "created_at": utc_now(), "kind": kind, "note": note, "live": live, "include_output": include_output,
        "comfy_init_version": __version__, "comfyui_version": comfyui_version(),
        "variant": (config or {}).get("variant"), "config": config,
        "layout": {"database": os.path.relpath(instance.database, instance.root),
                   "folders": [f for f in TOP_FOLDERS if f != "output" or include_output]},
        "git_nodes": git_checkouts(instance), "pip_freeze": pip_freeze(instance),
        "venv": venv_record(instance),
    }


def venv_record(instance):
    """The instance environment's own packages (read from its dist-info) and the build it was made
    for; None without one. A restore hands the packages to the next environment made."""
    from comfy_init.venv.packages import freeze_lines
    from comfy_init.venv.tag import read_json

    if not os.path.isdir(instance.venv):
        return None
    tag = read_json(instance.venv_tag) or {}
    return {"freeze": freeze_lines(instance.venv), "build": tag.get("build")}

