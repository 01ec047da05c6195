"""The few git commands templates need: where a custom node came from, and cloning it back.

git runs without a terminal prompt (a remote that asks for a password fails instead of hanging),
and with `safe.directory` set for the one checkout it reads: comfy-init often runs as root over
folders owned by the instance's PUID, which git would otherwise refuse as "dubious ownership".
"""

import os
import subprocess

TIMEOUT = 600.0
READ_TIMEOUT = 30.0


class GitFailed(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


def _env():
    return dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", LC_ALL="C")


def _git(args, cwd=None, timeout=TIMEOUT, safe=None):
    prefix = ["git"] + (["-c", f"safe.directory={safe}"] if safe else [])
    try:
        done = subprocess.run(prefix + args, cwd=cwd, env=_env(), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise GitFailed("git is not installed (install it, e.g. `apt-get install git`)") from None
    except subprocess.TimeoutExpired:
        raise GitFailed(f"`git {' '.join(args)}` took longer than {timeout:g} s") from None
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise GitFailed(f"`git {' '.join(args)}` failed: {detail}")
    return done.stdout.strip()


def checkout_origin(path):
    """(remote URL, commit) of the git checkout at `path`, or None when it is not one or has no
    remote. The remote is `origin`, else the first one."""
    if not os.path.lexists(os.path.join(path, ".git")):
        return None
    try:
        commit = _git(["-C", path, "rev-parse", "HEAD"], timeout=READ_TIMEOUT, safe=path)
        remotes = _git(["-C", path, "remote"], timeout=READ_TIMEOUT, safe=path).split()
        if not remotes:
            return None
        remote = "origin" if "origin" in remotes else remotes[0]
        url = _git(["-C", path, "remote", "get-url", remote], timeout=READ_TIMEOUT, safe=path)
    except GitFailed:
        return None
    return url, commit


def clone_at(remote, commit, target):
    """Clone `remote` into `target` (which must not exist) and check out `commit` there."""
    _git(["clone", "--quiet", "--no-checkout", "--", remote, target])
    _git(["-C", target, "checkout", "--quiet", "--detach", commit], safe=target)
    # Submodules are part of some nodes; a failure here is reported like a failed clone.
    if os.path.isfile(os.path.join(target, ".gitmodules")):
        _git(["-C", target, "submodule", "update", "--init", "--recursive", "--quiet"], safe=target)
