"""What every checker of `comfy-init check` looks at, read once: the registry, what stands under
instances/, and the options (whose uid must write, where the ComfyUI checkout is, how old a
temporary must be before it counts as left behind)."""

import os
import time

from comfy_init.errors import ComfyInitError
from comfy_init.layout import INSTANCE_ID_PATTERN, RESERVED_IDS
from comfy_init.ops.registry import cli_recover_advice
from comfy_init.store.registry import Registry, RegistryDamaged

# A temporary of comfy-init counts as left behind only when it is older than this AND the lock
# its writer holds is free. Every writer renames or removes its temporary within seconds.
STALE_AFTER = 3600.0


class Context:
    """`document` is the registry (None when it cannot be read: `registry_problems` say why);
    `entries` maps each name under instances/ (dot names excluded: those are work directories)
    to its lstat."""

    def __init__(self, layout, *, puid=None, pgid=None, app_dir=None, stale_after=STALE_AFTER, now=None):
        self.layout = layout
        self.puid = puid
        self.pgid = pgid
        self.app_dir = app_dir
        self.stale_after = stale_after
        self.now = time.time() if now is None else now
        self.registry = Registry(layout)
        self.document, self.registry_problems = _load(self.registry)
        self.entries = _entries(layout.instances)
        self.cache = {}  # what a checker found once and its fixer looks up again

    def renewed(self):
        """A fresh look at the same tree with the same options (after fixes)."""
        return Context(self.layout, puid=self.puid, pgid=self.pgid, app_dir=self.app_dir,
                       stale_after=self.stale_after)

    @property
    def registered(self):
        return set(self.document["instances"]) if self.document else set()

    @property
    def directory_ids(self):
        """Names under instances/ that are instance ids (a directory, or a link, of that name)."""
        return {name for name in self.entries if is_instance_id(name)}

    @property
    def instance_ids(self):
        """Every instance the tree knows of: configured, or present as a directory."""
        return sorted(self.registered | self.directory_ids)

    def is_stale(self, info):
        return self.now - info.st_mtime > self.stale_after


def is_instance_id(name):
    return bool(INSTANCE_ID_PATTERN.match(name)) and name not in RESERVED_IDS


def _load(registry):
    try:
        return registry.load(), []
    except RegistryDamaged as damaged:
        return None, damaged.advise(cli_recover_advice).problems
    except ComfyInitError as error:
        return None, error.problems


def _entries(directory):
    try:
        with os.scandir(directory) as found:
            return {entry.name: entry.stat(follow_symlinks=False) for entry in found
                    if not entry.name.startswith(".")}
    except OSError:
        return {}  # missing, not a directory, or unreadable: the tree checker says which
