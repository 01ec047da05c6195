"""What must stay true of an instance while its ComfyUI runs, checked by `comfy-init health` (the
image's HEALTHCHECK) and, every COMFY_WATCH_INTERVAL seconds, by the running comfy-init itself
(boot.watch): one module, so the two can never disagree.

- isolation: the instance directory and its temp, user, output, custom_nodes and database resolve
  into no other instance, not into shared/ or meta/, and not into each other; the `models` link
  leads to shared/models; `input` reaches no other instance; the owner file still names the id.
- the claim: the registry still says this instance is held by us.

Only looks: a fixed number of lstat/readlink/realpath calls and one small read (the owner file),
never a walk. Standard library only: it runs in PID 1's process and in every HEALTHCHECK. Each
finding is a Problem, with the path it is about and the fix.
"""

import os

from comfy_init.errors import ComfyInitError
from comfy_init.problems import Problem
from comfy_init.store import locks
from comfy_init.store.files import read_regular
from comfy_init.store.hostid import identity
from comfy_init.tree.paths import ALL_INSTANCES, instance_owner, overlaps

_SEPARATE = "give this instance its own folder back (a real directory, or a link inside its own directory)"


def isolation_problems(layout, instance):
    """The isolation findings of a multi-instance `instance` (an InstancePaths of `layout`)."""
    real = os.path.realpath
    zones = {"instances": real(layout.instances), "shared/": real(layout.shared), "meta/": real(layout.meta)}
    root = real(instance.root)
    clash = _clash(root, instance.id, zones)
    if clash:
        return [Problem("shared-folder", f"resolves to {root}, which lies in {clash}", path=instance.root,
                        fix="point the instance directory back at its own folder")]
    problems = []
    folders = {path: real(path) for path in instance.own_folders()}
    for path, resolved in folders.items():
        # Only the folder that was redirected is at fault, not the real one it now overlaps.
        moved = resolved != os.path.join(root, os.path.basename(path))
        siblings = [f"{os.path.basename(p)}/" for p, r in folders.items()
                    if moved and p != path and overlaps(resolved, r)]
        clash = _clash(resolved, instance.id, zones) or (siblings[0] if siblings else None)
        if clash:
            wipe = " (and ComfyUI wipes temp at every start)" if os.path.basename(path) == "temp" else ""
            problems.append(Problem("shared-folder", f"resolves to {resolved}, which lies in {clash}: two "
                                    f"writers share one folder{wipe}", path=path, fix=_SEPARATE))
    database = real(instance.database)
    clash = _clash(database, instance.id, zones)
    if clash:
        problems.append(Problem("shared-folder", f"resolves to {database}, which lies in {clash}: two ComfyUIs "
                                "would share one database", path=instance.database,
                                fix="give this instance its own user/comfyui.db (move the link away)"))
    problems += _models_link_problems(layout, instance)
    input_clash = _clash(real(instance.input), instance.id, zones, shared_ok=True)
    if input_clash:
        problems.append(Problem("wrong-link", f"resolves to {real(instance.input)}, which lies in {input_clash}",
                                path=instance.input, fix=f"make it a link to {layout.shared_input} again"))
    return problems + _owner_problems(instance)


def _clash(resolved, instance_id, zones, shared_ok=False):
    """Which zone a resolved path of `instance_id` wrongly lies in (a phrase), or None."""
    for name in ("meta/",) if shared_ok else ("shared/", "meta/"):
        if overlaps(resolved, zones[name]):
            return name
    owner = instance_owner(resolved, zones["instances"])
    if owner == ALL_INSTANCES:
        return "every instance's directory"
    if owner is not None and owner != instance_id:
        return f"instance {owner!r}"
    return None


def _models_link_problems(layout, instance):
    path, wanted = instance.models, layout.shared_models
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return [Problem("missing-path", f"the link to {wanted} is gone", path=path,
                        fix=f"restart the container (comfy-init makes the link again), or `ln -s "
                            f"{os.path.relpath(wanted, instance.root)} {path}`")]
    except OSError as error:
        return [Problem("io-error", f"cannot be looked at: {error.strerror}", path=path,
                        fix="check the filesystem of the data directory")]
    if not _is_link(info):
        return [Problem("link-expected", f"is no longer a link to {wanted}: ComfyUI's models are not the "
                        "shared ones", path=path, fix=f"move what it holds into {wanted}, remove it, and "
                        "restart the container (comfy-init makes the link again)")]
    if os.path.realpath(path) != os.path.realpath(wanted):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return [Problem("wrong-link", f"is a link to {target!r}, but must lead to {wanted}", path=path,
                        fix=f"replace it with a link to {os.path.relpath(wanted, instance.root)}")]
    return []


def _is_link(info):
    return (info.st_mode & 0o170000) == 0o120000


def _owner_problems(instance):
    try:
        found = read_regular(instance.owner_file)
    except ComfyInitError:
        found = b"?"  # a link, FIFO or directory there: not the mark comfy-init wrote
    if found is None:
        return [Problem("missing-path", "is gone: was the instance directory replaced while ComfyUI ran?",
                        path=instance.owner_file, fix=f"check {instance.root}, then restart the container")]
    owner = found.decode("utf-8", "replace").strip()[:63]
    if owner != instance.id:
        return [Problem("shared-folder", f"names instance {owner or '?'!r}, not {instance.id!r}: the directory "
                        "was swapped with another instance's", path=instance.owner_file,
                        fix="put each instance's directory back in its place, then restart the containers")]
    return []


# -- the claim ------------------------------------------------------------------------------------

_RESTART = "restart this container: its comfy-init claims the instance again, or says who holds it"


def claim_problems(layout, instance_id, document, token=None):
    """Whether the registry `document` still says we hold `instance_id`.

    `token`: the claim token the caller holds (the running comfy-init). Without one (health, run
    in the same container), the claim must name this host and container, and its lock must be
    held, by the claim's pid when /proc/locks can tell."""
    record = document["claims"].get(instance_id)
    if record is None:
        return [Problem("claim-lost", f"instance {instance_id!r} has no claim in the registry any more "
                        "(was it reset or restored?)", path=layout.registry,
                        fix="the running comfy-init writes it again at its next renewal; if this stays, "
                            + _RESTART)]
    if token is not None:
        if record.get("token") == token:
            return []
        return [_taken(instance_id, record)]
    me = identity()
    if any(record.get(key) != me[key] for key in ("host", "boot_id", "container_id")):
        return [_taken(instance_id, record)]
    if not record.get("holds_lock", True):
        return []  # taken over from a frozen holder, the lock not yet ours: only its lease can tell
    lock_path = layout.lock_path(instance_id)
    try:
        held = locks.held_elsewhere(lock_path)
    except ComfyInitError as error:
        return error.problems
    if not held:
        return [Problem("claim-lost", f"instance {instance_id!r}'s lock is free: the comfy-init that held it "
                        f"(pid {record.get('pid')}) is gone", path=lock_path, fix=_RESTART)]
    if _holds_flock(record.get("pid"), lock_path) is not False:
        return []  # the claim's pid holds it (or /proc does not let us look): the usual case, cheap
    # Someone else holds it, or the claim's pid means another process here (a host shell looking
    # into a container's namespace): /proc/locks tells which, but its first read costs ~7 ms.
    holder = locks.holder_pid(lock_path)
    if holder is not None and holder != record.get("pid") and _same_pid_namespace(holder):
        return [Problem("claim-lost", f"instance {instance_id!r}'s lock is held by pid {holder}, but its claim "
                        f"names pid {record.get('pid')}", path=lock_path, fix=_RESTART)]
    return []


def _is_process(pid):
    """Whether `pid` is a process, not a thread: /proc/<tid> exists for every thread too (unlisted),
    with its process's fd table, so a claim naming a thread id of the holder would look held."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            if line.startswith("Tgid:"):
                return line.split()[1] == str(pid)
    return True


def _holds_flock(pid, path):
    """Whether process `pid` (as we see it) has `path` open with a flock on it, from its
    /proc/<pid>/fdinfo: True, False, or None when /proc does not let us look."""
    try:
        wanted = os.stat(path)
        if not _is_process(pid):
            return False
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return None
    for descriptor in descriptors:
        try:
            info = os.stat(f"/proc/{pid}/fd/{descriptor}")
            if (info.st_dev, info.st_ino) != (wanted.st_dev, wanted.st_ino):
                continue
            with open(f"/proc/{pid}/fdinfo/{descriptor}", encoding="ascii", errors="replace") as file:
                if " FLOCK " in file.read():
                    return True
        except OSError:
            continue
    return False


def _same_pid_namespace(pid):
    """Whether `pid` (as we see it) lives in our PID namespace, so that the pid its claim records
    means the same process to us. From a host shell a container's comfy-init is not: no verdict."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def _taken(instance_id, record):
    # No renewal time in the words: the watch logs a finding once, and a holder renews every lease/3.
    where = f"{record.get('host')}" + (f" (container {record['container_id']})" if record.get("container_id") else "")
    holder = f"{where}, pid {record.get('pid')}, since {record.get('since')} (generation {record.get('generation')})"
    return Problem("claim-lost", f"instance {instance_id!r} is now held by {holder}, "
                   "not by this container", fix="two containers run one instance: stop this one (the other "
                   "holds the claim), or stop the other and " + _RESTART)
