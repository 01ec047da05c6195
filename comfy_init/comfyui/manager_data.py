"""ComfyUI-Manager's own files of one instance, and the migration of the older folder.

Manager 4 (the comfyui_manager pip package) keeps config.ini, snapshots/ and startup-scripts/ in
ComfyUI's "system user" folder of the user directory: <user>/__manager/. Every instance has its own
user directory, so every instance has its own Manager data, never shared.

The custom-node Manager kept them in <user>/default/ComfyUI-Manager/. From 3.38 on, running on a
ComfyUI that has the system user folders, it migrates by itself at start: config.ini only (other
files are not carried over) is written to __manager/config.ini with a security level below 'normal'
raised to 'normal', and the old folder is moved to __manager/.legacy-manager-backup. The Manager 4
package has no such code, so an instance that goes straight from the custom-node Manager to
Manager 4 would start with default settings: comfy-init does the same migration, in the instance's
own user folder, before ComfyUI starts. Unlike the Manager it deletes nothing: where a backup is
already there, the old folder stays in place and a warning says so; the same when user/default or
user/__manager is a link (another instance's folder, shared: never moved into or written through).
A rename within the user folder: no walk, whatever the folder holds.
"""

import os

MANAGER_FOLDER = "__manager"
LEGACY_FOLDER = os.path.join("default", "ComfyUI-Manager")
BACKUP_NAME = ".legacy-manager-backup"
CONFIG_NAME = "config.ini"
_BELOW_DEFAULT = ("weak", "normal-")  # the Manager raises these to its default, 'normal'


def manager_folder(user_dir):
    return os.path.join(user_dir, MANAGER_FOLDER)


def migrate_legacy(user_dir, uid=None, gid=None):
    """Migrate <user_dir>/default/ComfyUI-Manager into <user_dir>/__manager as the Manager does.
    Returns (info lines, warning lines); both empty when there is nothing to migrate. What it
    creates is given to uid:gid (ComfyUI's user) when they are set."""
    legacy = os.path.join(user_dir, LEGACY_FOLDER)
    legacy_config = os.path.join(legacy, CONFIG_NAME)
    if os.path.islink(legacy) or not os.path.isfile(legacy_config):
        return [], []  # the Manager, too, migrates only a folder that holds a config.ini
    target = manager_folder(user_dir)
    outside = _linked_elsewhere(user_dir, (LEGACY_FOLDER, MANAGER_FOLDER))
    if outside is not None:
        return [], [f"ComfyUI-Manager: {legacy} was not migrated: {outside} is a link out of this instance's "
                    f"user folder {user_dir} (another instance's folders are never moved or written; migrate "
                    "by hand, or replace the link with a folder)"]
    backup = os.path.join(target, BACKUP_NAME)
    if os.path.lexists(backup):
        return [], [f"ComfyUI-Manager: {legacy} was not migrated: {backup} is already there "
                    "(move one of them away; comfy-init never overwrites a backup)"]
    info = []
    new_config = os.path.join(target, CONFIG_NAME)
    _make_folder(target, uid, gid)
    if not os.path.lexists(new_config):
        raised = _write_migrated_config(legacy_config, new_config, uid, gid)
        info.append(f"ComfyUI-Manager: {legacy_config} migrated to {new_config}" +
                    (f" (security_level {raised!r} raised to 'normal', as the Manager does)" if raised else ""))
    os.rename(legacy, backup)
    info.append(f"ComfyUI-Manager: the old folder {legacy} was moved to {backup}; "
                "remove it once the Manager works as before")
    return info, []


def _linked_elsewhere(user_dir, names):
    """The first link on the way from user_dir to user_dir/<name> (e.g. user/default shared with
    another instance), as 'path -> where it leads'; None when there is none."""
    for name in names:
        path = user_dir
        for part in name.split(os.sep):
            path = os.path.join(path, part)
            if os.path.islink(path):
                return f"{path} -> {os.path.realpath(path)}"
    return None


def _make_folder(path, uid, gid):
    if os.path.isdir(path):
        return
    os.makedirs(path, exist_ok=True)
    if uid is not None:
        os.lchown(path, uid, gid)


def _write_migrated_config(source, target, uid, gid):
    """Write `source` to `target`, its security level raised to 'normal' when it is lower; the old
    level when it was raised, else None. A config.ini that does not parse is not carried over (the
    Manager then starts with its defaults), but the folder is still moved to the backup."""
    import configparser

    config = configparser.ConfigParser(strict=False)
    try:
        config.read(source, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None
    raised = None
    if config.has_section("default"):
        level = config["default"].get("security_level", "normal").lower()
        if level in _BELOW_DEFAULT:
            config["default"]["security_level"] = "normal"
            raised = level
    partial = target + ".comfy-init-tmp"
    with open(partial, "w", encoding="utf-8") as file:
        config.write(file)
    if uid is not None:
        os.lchown(partial, uid, gid)
    os.rename(partial, target)
    return raised
