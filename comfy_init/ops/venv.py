"""`comfy-init venv show|rebuild|freeze ID`: an instance's own Python environment, from a host shell
or a one-off container. Reads files only (the tag, the build file, *.dist-info); `rebuild` runs
`python -m venv` and pip, under the instance's lock, and refuses while the instance runs.

"This image" is the interpreter given with --python, else $COMFY_PYTHON, else comfy-init's own:
in a container, the image's /opt/venv/bin/python.
"""

import os
import sys

from comfy_init.errors import ComfyInitError, UsageError, error_for
from comfy_init.layout import VENV_BUILDING_PREFIX, VENV_MOVED_PREFIX
from comfy_init.problems import Problem
from comfy_init.results import Result
from comfy_init.store import claims, conflicts
from comfy_init.store.registry import Registry
from comfy_init.venv import environment
from comfy_init.venv.packages import freeze_lines
from comfy_init.venv.tag import read_json, summary

DEFAULT_APP_DIRECTORY = "/opt/comfyui"


def base_python(python=None):
    return python or os.environ.get("COMFY_PYTHON", "").strip() or sys.executable


def _app_dir():
    return os.environ.get("COMFY_APP_DIRECTORY", "").strip() or DEFAULT_APP_DIRECTORY


def _instance(layout, instance_id):
    if conflicts.id_problems(instance_id):
        raise UsageError(*conflicts.id_problems(instance_id))
    instance = layout.instance(instance_id)
    if not os.path.isdir(instance.root):
        raise error_for(Problem("unknown-instance", f"no instance {instance_id!r} in {layout.data}",
                                fix="`comfy-init instance list` shows the instances"))
    return instance


def _tree_size(path):
    """Bytes under `path`: this walks the environment's own files (never the image's)."""
    total = 0
    for directory, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                pass
    return total


def show_venv(layout, instance_id, *, python=None, sizes=True):
    command = "venv show"
    try:
        instance = _instance(layout, instance_id)
        assessment = environment.assess(instance, base_python(python), _app_dir())
    except ComfyInitError as error:
        return Result.failure(command, error)
    tag = read_json(instance.venv_tag) or {}
    made_for = tag.get("build") if isinstance(tag.get("build"), dict) else None
    exists = os.path.isdir(instance.venv)
    data = dict(assessment.as_dict(), exists=exists, made_for=made_for, matches=assessment.state == environment.READY,
                packages=freeze_lines(instance.venv) if exists else [],
                size_bytes=_tree_size(instance.venv) if exists and sizes else None, size_walks=bool(sizes),
                moved_aside=_siblings(instance, VENV_MOVED_PREFIX), unfinished=_siblings(instance, VENV_BUILDING_PREFIX))
    return Result(command, data, _show_lines(data))


def _siblings(instance, prefix):
    try:
        return sorted(os.path.join(instance.root, n) for n in os.listdir(instance.root) if n.startswith(prefix))
    except OSError:
        return []


def _show_lines(data):
    from comfy_init.ops.units import human_size

    made_for = summary(data["made_for"]) if data["made_for"] else "none (no tag)"
    match = "yes" if data["matches"] else f"no: {'; '.join(data['differences']) or data['state']}"
    lines = [f"path:         {data['path']}" + ("" if data["exists"] else " (not made yet: the next start makes it)"),
             f"made for:     {made_for}", f"this image:   {data['build']} ({data['build_file']})",
             f"matches:      {match}", f"next start:   {data['state']}"]
    if data["size_bytes"] is not None:
        lines.append(f"size:         {human_size(data['size_bytes'])} (its own files, walked)")
    lines.append(f"own packages: {len(data['packages'])}")
    lines += [f"  {line}" for line in data["packages"]]
    lines += [f"moved aside:  {path}" for path in data["moved_aside"]]
    lines += [f"unfinished:   {path} (a killed rebuild: the next start or rebuild handles it)"
              for path in data["unfinished"]]
    return lines


def freeze_venv(layout, instance_id):
    """The environment's own packages as `pip freeze` prints them (read from its dist-info: no pip
    call, so it works from a host shell that cannot run the container's interpreter)."""
    try:
        instance = _instance(layout, instance_id)
        if not os.path.isdir(instance.venv):
            raise error_for(Problem("missing-path", f"instance {instance_id!r} has no environment yet",
                                    path=instance.venv, fix="start the instance once (COMFY_VENV on) or run "
                                    f"`comfy-init venv rebuild {instance_id}`"))
    except ComfyInitError as error:
        return Result.failure("venv freeze", error)
    lines = freeze_lines(instance.venv)
    return Result("venv freeze", {"path": instance.venv, "packages": lines}, lines)


class _Owner:
    """The instance directory's owner, as whom a root rebuild runs pip (ComfyUI's PUID user)."""

    def __init__(self, info):
        self.uid, self.gid, self.groups = info.st_uid, info.st_gid, [info.st_gid]


def rebuild_venv(layout, instance_id, *, python=None):
    """Move the environment aside (if there is one), make a fresh one and reinstall its recorded
    requirements; refused (75) while the instance runs, whose lock it holds meanwhile."""
    command = "venv rebuild"
    try:
        instance = _instance(layout, instance_id)
        lock = claims.lock_stopped(Registry(layout), instance_id, f"stop the instance first (docker stop ...), "
                                   f"or let its next start rebuild it")
        try:
            assessment = environment.assess(instance, base_python(python), _app_dir())
            if assessment.state == environment.FINISH:
                environment.ensure(assessment)
                assessment = environment.assess(instance, base_python(python), _app_dir())
            info = os.stat(instance.root)
            user = _Owner(info) if os.geteuid() == 0 and info.st_uid != 0 else None
            done = environment.rebuild(assessment, user, os.environ)
        finally:
            lock.release()
    except ComfyInitError as error:
        return Result.failure(command, error)
    data = dict(done, path=instance.venv, build=summary(assessment.build))
    lines = [f"rebuilt {instance.venv} for {data['build']}"]
    if done["moved_to"]:
        lines.append(f"the old environment is kept at {done['moved_to']}")
    lines.append(f"reinstalled {len(done['pins'])} recorded package(s) and {len(done['requirement_files'])} "
                 "node requirements file(s)")
    return Result(command, data, lines)
