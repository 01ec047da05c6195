"""Who ComfyUI runs as: PUID/PGID when started as root, unchanged otherwise.

Only the top level of the instance's own folders is chowned (a fixed handful of paths): never a
recursive walk, never shared/models. Files ComfyUI writes later are its user's by creation.
"""

import errno
import os

from comfy_init import log
from comfy_init.errors import CannotCreateError, PermissionDeniedError
from comfy_init.tree.steps import MKDIR


class User:
    __slots__ = ("uid", "gid", "groups", "name", "home")

    def __init__(self, uid, gid, groups, name, home):
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.name = name
        self.home = home


def owned_folders(config):
    """The folders that belong to this instance alone, whose owner ComfyUI's user must be."""
    instance = config.instance
    return ([instance.root] if config.multi_instance else []) + instance.own_folders()


def prepare(config, steps):
    """Chown what must be ComfyUI's and describe the user to run as; None when nothing changes."""
    if config.puid is None:
        return None
    if os.geteuid() != 0:
        log.warning(f"PUID={config.puid} is ignored: comfy-init does not run as root, so ComfyUI runs "
                    f"as uid {os.geteuid()}")
        return None
    user = _describe_user(config.puid, config.pgid)
    created = {step.path for step in steps if step.kind == MKDIR}
    shared_input = config.layout.shared_input
    paths = owned_folders(config) + ([shared_input] if shared_input in created else [])
    for path in paths:
        _chown_if_wrong(path, user.uid, user.gid)
    _make_home(user)
    return user


def _chown_if_wrong(path, uid, gid):
    try:
        info = os.lstat(path)
        if (info.st_uid, info.st_gid) != (uid, gid):
            os.lchown(path, uid, gid)
    except OSError as error:
        if error.errno == errno.EROFS:
            raise CannotCreateError(
                f"cannot give {path} to PUID={uid} PGID={gid}: the filesystem is read-only; mount the "
                "data directory read-write") from None
        hint = ("that uid or gid is not mapped in this user namespace (rootless Docker?): use ids "
                "inside the mapped range" if error.errno == errno.EINVAL else
                "the data directory's filesystem must allow root to chown (for NFS: no root_squash), "
                "or chown it on the host")
        raise PermissionDeniedError(
            f"cannot give {path} to PUID={uid} PGID={gid}: {error.strerror}; {hint}") from None


def _describe_user(uid, gid):
    import pwd

    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        # A uid with no passwd entry (common with PUID): a private HOME under /tmp.
        return User(uid, gid, [gid], f"uid{uid}", f"/tmp/comfy-init-home-{uid}")
    groups = sorted(set(os.getgrouplist(entry.pw_name, gid)))
    home = entry.pw_dir
    if not home or not os.path.isdir(home) or os.stat(home).st_uid != uid:
        home = f"/tmp/comfy-init-home-{uid}"
    return User(uid, gid, groups, entry.pw_name, home)


def _make_home(user):
    if not user.home.startswith("/tmp/comfy-init-home-"):
        return
    try:
        os.mkdir(user.home, 0o700)
    except FileExistsError:
        pass
    _chown_if_wrong(user.home, user.uid, user.gid)
