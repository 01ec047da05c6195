"""The few names of ComfyUI's folder_paths module that the real comfyui_manager package reads.

ComfyUI-Manager 4 is a pip package that ComfyUI's main.py imports when started with
--enable-manager; its start-up code (prestartup) asks folder_paths for the custom_nodes folders, the
user directory, and the "system user" directory it keeps its own files in: `__manager` inside the
user directory (ComfyUI's get_system_user_directory; names starting with `__` are never served to
the web UI as user data). The stand-in's main.py fills this module from the folders it resolved.
"""

import os

SYSTEM_USER_PREFIX = "__"

user_directory = None
folder_names_and_paths = {}


def configure(folders):
    """Take the folders the stand-in resolved (main.Folders)."""
    global user_directory
    user_directory = folders.user
    for name, paths in folders.table.items():
        folder_names_and_paths[name] = (list(paths), set(folders.extensions[name]))


def get_folder_paths(name):
    return list(folder_names_and_paths[name][0])


def get_user_directory():
    return user_directory


def get_system_user_directory(name="system"):
    """<user directory>/__<name>: one per user directory, so one per ComfyUI instance."""
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"invalid system user name {name!r}")
    return os.path.join(user_directory, SYSTEM_USER_PREFIX + name)
