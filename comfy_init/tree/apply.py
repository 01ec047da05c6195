"""Carrying out a plan of the data tree, safely against other instances doing the same.

Directories are made with mkdir (EEXIST from a racing instance is fine if a directory stands
there); new links with one symlink() call, which is atomic and never replaces anything, so
whatever appeared since planning is kept; only an existing LINK is ever re-pointed (a new link
renamed over it). Before any creation the parent is resolved once more: nothing is created through
a link that leads out of the data root, even one planted after planning.
"""

import errno
import os

from comfy_init.errors import CannotCreateError, DataError, PermissionDeniedError
from comfy_init.problems import Problem
from comfy_init.store.files import publish_new, read_regular, unused_name
from comfy_init.tree.paths import is_inside
from comfy_init.tree.steps import DESCRIPTIONS, LINK, MARK_OWNER, MKDIR, MOVE_ASIDE, RELINK, REPLACE_EMPTY_DIR


def _changed(path, message):
    return DataError(Problem("changed-while-preparing", message, path=path,
                             fix="it was left as it is: move it away and start again"))


def apply_steps(steps, data_root=None, *, link_anywhere=False):
    """Carry out the steps that change the disk, in order. `data_root`: creations whose parent
    resolves outside it are refused (unless `link_anywhere`, for the old layout's own links)."""
    root = os.path.realpath(data_root) if data_root else None
    literal = os.path.abspath(data_root) if data_root else None
    for step in steps:
        if not step.changes_disk:
            continue
        if root and not link_anywhere:
            _refuse_escape(step.path, root, literal)
        try:
            _apply(step)
        except PermissionError as error:
            raise PermissionDeniedError(Problem(
                "not-writable", f"permission denied while '{DESCRIPTIONS[step.kind]}'",
                path=error.filename or step.path,
                fix=f"make its parent writable for uid {os.geteuid()} or mount the data directory read-write")) from None
        except OSError as error:
            raise CannotCreateError(Problem(
                "cannot-create", f"cannot {DESCRIPTIONS[step.kind]}: {error.strerror or error}", path=step.path,
                fix="check that the data directory's filesystem is mounted read-write and has space")) from None


def _refuse_escape(path, root, literal):
    parent = os.path.dirname(os.path.abspath(path))
    if is_inside(parent, literal) and not is_inside(os.path.realpath(parent), root):
        raise DataError(Problem(
            "escapes-root", f"its parent now resolves to {os.path.realpath(parent)}, outside the data root {root}",
            path=path, fix="a link leading out of the data root appeared on the way: replace it with a directory"))


def _apply(step):
    if step.kind == MKDIR:
        _make_directory(step.path)
    elif step.kind == LINK:
        _make_new_link(step.path, step.target)
    elif step.kind == RELINK:
        _replace_link(step.path, step.target)
    elif step.kind == REPLACE_EMPTY_DIR:
        try:
            os.rmdir(step.path)  # refuses a directory that gained files since planning
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise _changed(step.path, "files appeared in this directory while preparing the tree") from None
            raise
        _make_new_link(step.path, step.target)
    elif step.kind == MARK_OWNER:
        _mark_owner(step.path, step.target)
    elif step.kind == MOVE_ASIDE:
        os.rename(step.path, unused_name(step.path + ".image-original"))
        _make_new_link(step.path, step.target)


def _mark_owner(path, instance_id):
    """Of two instances racing for one directory, one publishes the mark (whole, at once); the
    other reads it."""
    try:
        publish_new(path, f"{instance_id}\n".encode())
    except FileExistsError:
        found = read_regular(path)
        if (found or b"").decode("utf-8", "replace").strip() != instance_id:
            raise DataError(Problem(
                "shared-folder", f"was just marked for another instance while preparing {instance_id!r}",
                path=path, fix="two instances were started on one directory: give each its own")) from None


def _make_directory(path):
    try:
        os.mkdir(path)
    except FileExistsError:
        # Another instance made it between our look and now: fine if it is a directory.
        if not os.path.isdir(path):
            raise _changed(path, "appeared as something other than a directory while preparing the tree") from None


def _make_new_link(path, target):
    """symlink() is atomic and never replaces anything: what appeared since planning is kept."""
    try:
        os.symlink(target, path)
    except FileExistsError:
        raise _changed(path, "something appeared here while preparing the tree") from None


def _replace_link(path, target):
    """Point an existing link elsewhere: a new link under a temporary name, renamed over the old one,
    so the path is never missing. Only a link is ever replaced."""
    if not os.path.islink(path):
        raise _changed(path, "is no longer a link")
    temporary = f"{path}.comfy-init-link-{os.getpid()}"
    try:
        os.unlink(temporary)  # a leftover of a crash at exactly this point
    except FileNotFoundError:
        pass
    os.symlink(target, temporary)
    try:
        os.replace(temporary, path)
    except OSError:
        os.unlink(temporary)
        raise
