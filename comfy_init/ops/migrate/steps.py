"""Each migration step, forward and back. Every function first looks at the tree to see whether its
step is already done (so a rerun after a kill at any instant neither repeats nor skips work), and
refuses, changing nothing, when the tree is in a state the plan never led to.
"""

import errno
import os

from comfy_init.errors import ComfyInitError, error_for
from comfy_init.ops.migrate import copying
from comfy_init.problems import Problem
from comfy_init.store.files import fsync_directory, read_regular, write_atomic


def _changed(path, what):
    return error_for(Problem("changed-while-preparing", f"{what}: the tree changed during the migration",
                             path=path, fix="look at it, put it back as the journal expects or move it away, "
                                            "then run the same command again"))


def _inode(path):
    try:
        return os.lstat(path).st_ino
    except FileNotFoundError:
        return None


def _empty_dir(path):
    try:
        return os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)
    except OSError:
        return False


def _rename_into(src, dst, is_dir):
    """rename(2) that never overwrites: a directory may replace an EMPTY directory (the kernel
    refuses a full one); anything else needs the name free."""
    if os.path.lexists(dst) and not (is_dir and _empty_dir(dst)):
        raise _changed(dst, "something is in the way of a move")
    os.rename(src, dst)
    fsync_directory(os.path.dirname(dst))
    if os.path.dirname(src) != os.path.dirname(dst):
        fsync_directory(os.path.dirname(src))


def do_move(step, _layout=None):
    src, dst, ino = step["src"], step["dst"], step["ino"]
    if _inode(src) != ino:
        if _inode(dst) == ino and not os.path.lexists(src):
            return  # done before a kill
        raise _changed(src, "is not the entry the plan moves")
    if step["parents"]:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
    _rename_into(src, dst, step["dir"])


def undo_move(step, _layout=None):
    src, dst, ino = step["src"], step["dst"], step["ino"]
    if _inode(dst) != ino:
        if _inode(src) == ino:
            return  # never moved, or already back
        raise _changed(dst, "is not the entry the migration moved there")
    _rename_into(dst, src, step["dir"])
    _restore_empty(step)


def do_copy(step, _layout=None):
    src, dst = step["src"], step["dst"]
    there = os.path.lexists(dst) and not _empty_dir(dst)
    if not os.path.lexists(src):
        if there:
            return
        raise _changed(src, "is gone, and its copy is not there")
    if step["parents"]:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
    if there:
        copying.finish_copied(src, dst)
    else:
        if _empty_dir(dst):
            os.rmdir(dst)
        copying.copy_across(src, dst)


def undo_copy(step, _layout=None):
    src, dst = step["src"], step["dst"]
    if os.path.lexists(dst) and not _empty_dir(dst):
        if os.path.lexists(src):
            copying.finish_copied(dst, src)  # the source was never removed: drop the copy if equal
        else:
            copying.copy_across(dst, src)
    building = dst + copying.COPYING_SUFFIX
    if os.path.lexists(building):
        copying.remove_copied(building, copying.all_entries(building))
    _restore_empty(step)


def _restore_empty(step):
    if step["replaces_empty"] and not os.path.lexists(step["dst"]):
        os.mkdir(step["dst"])  # the empty folder the instance's tree had there


def do_rmdir(step, _layout=None):
    path = step["path"]
    if not os.path.lexists(path):
        return
    try:
        os.rmdir(path)
    except OSError as error:
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise _changed(path, "still holds entries after its contents were merged") from None
        raise
    fsync_directory(os.path.dirname(path))


def undo_rmdir(step, _layout=None):
    path = step["path"]
    if not os.path.lexists(path):
        os.mkdir(path)
        os.chmod(path, step["mode"])


def do_compat_link(step, _layout=None):
    path, target = step["path"], step["target"]
    if os.path.islink(path) and os.readlink(path) == step["target"]:
        return
    if os.path.lexists(path):
        raise _changed(path, "stands where the compatibility link goes")
    os.symlink(target, path)
    fsync_directory(os.path.dirname(path))


def undo_compat_link(step, _layout=None):
    path = step["path"]
    if os.path.islink(path) and os.readlink(path) == step["target"]:
        os.unlink(path)
        fsync_directory(os.path.dirname(path))


def _set_link(path, expected, text):
    current = os.readlink(path) if os.path.islink(path) else None
    if current == text:
        return
    if current != expected:
        raise _changed(path, f"is not the link the plan rewrites (it holds {current!r})")
    temporary = f"{path}.comfy-init-relink"
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(text, temporary)
    os.rename(temporary, path)
    fsync_directory(os.path.dirname(path))


def do_relink(step, _layout=None):
    _set_link(step["path"], step["old"], step["new"])


def undo_relink(step, _layout=None):
    if os.path.lexists(step["path"]):
        _set_link(step["path"], step["new"], step["old"])


def do_owner(step, _layout=None):
    try:
        found = read_regular(step["path"])
    except ComfyInitError:
        raise _changed(step["path"], "is not comfy-init's owner file") from None
    if found is not None and found.decode("utf-8", "replace").strip() != step["id"]:
        raise _changed(step["path"], "names another instance")
    if found is None:
        write_atomic(step["path"], f"{step['id']}\n".encode())


def undo_owner(step, _layout=None):
    try:
        found = read_regular(step["path"])
    except ComfyInitError:
        return
    if found is not None and found.decode("utf-8", "replace").strip() == step["id"]:
        os.unlink(step["path"])
