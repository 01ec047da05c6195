"""Each migration step, forward and back. Every function first looks at the tree to see whether its
step is already done (so a rerun after a kill at any instant neither repeats nor skips work), and
refuses, changing nothing, when the tree is in a state the plan never led to. Going back is more
forgiving: whatever stands at a step's new place (the folder a restore replaced, say) is moved back
to its old one, since a rename loses nothing.
"""

import errno
import os

from comfy_init.errors import ComfyInitError, error_for
from comfy_init.ops.migrate import copying
from comfy_init.ops.migrate.manifest import file_digest
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
    if not os.path.lexists(dst) or (step["replaces_empty"] and _empty_dir(dst) and _inode(src) == ino):
        if os.path.lexists(src):
            return  # never moved, or already back
        raise _changed(dst, "is gone: what the migration moved there cannot be moved back")
    _rename_into(dst, src, step["dir"])  # the same entry, or what replaced it there: both go back
    _restore_empty(step)


def _restore_empty(step):
    if step["replaces_empty"] and not os.path.lexists(step["dst"]):
        os.mkdir(step["dst"])  # the empty folder the instance's tree had there


# -- park: the same file twice --------------------------------------------------------------------

def _still_same(step):
    """The kept copy still equals the incoming one (unchanged since the plan, or same bytes)."""
    try:
        kept = os.lstat(step["kept"])
    except FileNotFoundError:
        return False
    if [kept.st_ino, kept.st_size, kept.st_mtime_ns] == step["kept_stat"]:
        return True
    if step["link"] is not None:
        return os.path.islink(step["kept"]) and os.readlink(step["kept"]) == step["link"]
    return kept.st_size == os.lstat(step["src"]).st_size and file_digest(step["kept"]) == file_digest(step["src"])


def do_park(step, _layout=None):
    src, ino = step["src"], step["ino"]
    if _inode(src) != ino:
        if not os.path.lexists(src) and ino in (_inode(step["dst"]), _inode(step["alt"])):
            return
        raise _changed(src, "is not the entry the plan moves")
    if _still_same(step):
        os.makedirs(os.path.dirname(step["dst"]), exist_ok=True)
        _rename_into(src, step["dst"], False)
    else:  # the kept copy changed since the plan: this one is unique now, and stays beside it
        _rename_into(src, step["alt"], False)


def undo_park(step, _layout=None):
    src = step["src"]
    for place in (step["dst"], step["alt"]):
        if _inode(place) == step["ino"]:
            _rename_into(place, src, False)
            return
    if os.path.lexists(src):
        return
    # The parked copy is gone (the trash was emptied): the kept copy has the same bytes.
    if step["link"] is not None:
        os.symlink(step["link"], src)
        return
    copying.copy_file_as(step["kept"], src, step["mode"], step["mtime"])


# -- copy: another filesystem or mount ------------------------------------------------------------

def do_copy(step, _layout=None):
    src, dst = step["src"], step["dst"]
    if not os.path.lexists(src):
        if os.path.lexists(dst):
            return  # copied and the source removed (an empty directory copied is done too)
        raise _changed(src, "is gone, and its copy is not there")
    if step["parents"]:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.lexists(dst) and not (step["replaces_empty"] and _empty_dir(dst)):
        copying.finish_copied(src, dst, step["token"])
        return
    if _empty_dir(dst):
        os.rmdir(dst)
    copying.copy_across(src, dst, step["token"], step.get("links", {}))


def undo_copy(step, _layout=None):
    src, dst, token = step["src"], step["dst"], step["token"]
    if os.path.lexists(dst) and not (step["replaces_empty"] and _empty_dir(dst) and os.path.lexists(src)):
        if os.path.lexists(src):
            copying.finish_copied(dst, src, token)  # the source was never removed: drop the copy
        else:
            copying.copy_across(dst, src, token, {})
    copying.remove_scratch(dst, token)
    _restore_empty(step)


# -- directories, links, the owner file -----------------------------------------------------------

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


def _set_link(path, expected, text, token):
    current = os.readlink(path) if os.path.islink(path) else None
    if current == text:
        return
    if current != expected:
        raise _changed(path, f"is not the link the plan rewrites (it holds {current!r})")
    temporary = f"{path}.comfy-init-relink-{token}"  # the plan's own random token: never a user's name
    if os.path.islink(temporary):
        os.unlink(temporary)
    os.symlink(text, temporary)
    os.rename(temporary, path)
    fsync_directory(os.path.dirname(path))


def do_relink(step, _layout=None):
    _set_link(step["path"], step["old"], step["new"], step["token"])


def undo_relink(step, _layout=None):
    if os.path.lexists(step["path"]):
        _set_link(step["path"], step["new"], step["old"], step["token"])


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
