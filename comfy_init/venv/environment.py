"""Is the instance's environment the one this image needs, and if not, make it so.

`assess` is what every start pays: one read of the image's build file, one read of the
environment's tag, one stat of its python. `ensure` carries out what `assess` found: nothing, a
first environment, or a rebuild (the old one renamed venv.moved-<UTC>, never deleted).

A crash at any instant leaves a usable environment: the new one is made under a temporary name and
only renamed into place once its tag (written last) says it is complete; between the two renames
(old aside, new into place) there is no venv/ but a complete temporary, and the next start
finishes the swap before anything else.
"""

import os

from comfy_init import log
from comfy_init.errors import CannotCreateError
from comfy_init.layout import VENV_BUILDING_PREFIX
from comfy_init.problems import Problem
from comfy_init.venv.tag import TAG_FILE, differences, image_build, read_json, summary

READY, CREATE, REBUILD, FINISH = "ready", "create", "rebuild", "finish"


class Assessment:
    __slots__ = ("state", "instance", "base_python", "build", "build_source", "differences", "made_for")

    def __init__(self, state, instance, base_python, build, build_source, found_differences, made_for):
        self.state = state
        self.instance = instance
        self.base_python = base_python
        self.build = build
        self.build_source = build_source
        self.differences = found_differences
        self.made_for = made_for

    @property
    def python(self):
        return self.instance.venv_python

    def as_dict(self):
        return {"state": self.state, "path": self.instance.venv, "python": self.python,
                "base_python": self.base_python, "build": summary(self.build), "build_file": self.build_source,
                "differences": self.differences}

    def describe(self):
        """What a start does about the environment, in one line (the dry run prints it)."""
        where = self.instance.venv
        if self.state == READY:
            return f"use the environment {where} (made for this image: {summary(self.build)})"
        if self.state == FINISH:
            return f"finish an interrupted rebuild: rename {unfinished_swap(self.instance)} to {where}"
        if self.state == CREATE:
            return f"create the environment {where} from {self.base_python} ({summary(self.build)})"
        return (f"move the environment {where} aside (made for another image: {'; '.join(self.differences)}) "
                "and rebuild it with its recorded requirements")


def assess(instance, base_python, comfyui_dir):
    build, source = image_build(base_python, comfyui_dir)
    if build is None:
        raise CannotCreateError(Problem(
            "venv-failed", f"COMFY_PYTHON={base_python}: cannot tell which image build it belongs to (no "
            f"{source} and it did not run)", fix="point COMFY_PYTHON at a working interpreter, or set COMFY_VENV=off"))
    tag = read_json(instance.venv_tag)
    if tag is not None and os.path.isfile(instance.venv_python):
        made_for = tag.get("build") if isinstance(tag.get("build"), dict) else None
        found = differences(made_for, build) + _moved(tag.get("path"), instance.venv)
        return Assessment(REBUILD if found else READY, instance, base_python, build, source, found, made_for)
    if os.path.lexists(instance.venv):
        return Assessment(REBUILD, instance, base_python, build, source, ["no tag or no bin/python"], None)
    state = FINISH if unfinished_swap(instance) else CREATE
    return Assessment(state, instance, base_python, build, source, [], None)


def _moved(made_at, venv):
    """['path A -> B'] when the environment was made at another path (the data root mounted
    elsewhere): its pip.conf, scripts and activate name that path. A few lstat calls, no walk."""
    if not isinstance(made_at, str) or os.path.realpath(made_at) == os.path.realpath(venv):
        return []
    return [f"path {made_at} -> {venv}"]


def unfinished_swap(instance):
    """A complete temporary environment (its tag written) left by a rebuild that stopped between its
    two renames; None when there is none. Only looked for when venv/ is missing."""
    for path in _temporaries(instance):
        if os.path.isfile(os.path.join(path, TAG_FILE)):
            return path
    return None


def _temporaries(instance):
    try:
        names = sorted(os.listdir(instance.root), reverse=True)
    except OSError:
        return []
    return [os.path.join(instance.root, name) for name in names if name.startswith(VENV_BUILDING_PREFIX)]


def ensure(assessment, user=None, environ=None):
    """Carry out the assessment; returns the environment's python. CannotCreateError (73) when the
    environment cannot be made: then whatever stood at venv/ is still there."""
    environ = os.environ if environ is None else environ
    instance = assessment.instance
    if assessment.state == READY:
        return assessment.python
    if assessment.state == FINISH:
        path = unfinished_swap(instance)
        _rename(path, instance.venv, assessment.build)
        log.info(f"finished an interrupted rebuild: {path} is now {instance.venv}")
        tag = read_json(instance.venv_tag) or {}
        made_for = tag.get("build") if isinstance(tag.get("build"), dict) else None
        found = differences(made_for, assessment.build) + _moved(tag.get("path"), instance.venv)
        if not found:
            return assessment.python
        # Made for yet another image (the interrupted rebuild was another image's): rebuild it too.
        assessment = Assessment(REBUILD, instance, assessment.base_python, assessment.build,
                                assessment.build_source, found, made_for)
    rebuild(assessment, user, environ)
    return assessment.python


def _rename(source, target, build):
    try:
        os.rename(source, target)
    except OSError as error:
        raise CannotCreateError(Problem(
            "venv-failed", f"cannot make the Python environment for {summary(build)}: cannot rename "
            f"{source} to {target}: {error.strerror}", path=target,
            fix="make the instance directory writable by comfy-init, then start again")) from None


def rebuild(assessment, user, environ):
    """Build a new environment beside venv/, then swap it in (the old one moved aside). Returns
    where the old one went and what was reinstalled."""
    # Imported here: a start whose environment fits never pays for subprocess, email or secrets.
    import secrets
    import shutil

    from comfy_init.venv import build as builder
    from comfy_init.venv.packages import node_requirement_files, recorded_pins, restored_pins

    instance, build = assessment.instance, assessment.build
    _remove_unfinished(instance)
    old = instance.venv if os.path.lexists(instance.venv) else None
    pins = (recorded_pins(old, build.get("protected") or {}) if old
            else restored_pins(instance.venv_restored, build.get("protected") or {}))
    requirement_files = node_requirement_files(instance.custom_nodes)
    what = (["creating", "the environment"] if old is None else
            ["rebuilding", f"the environment ({_why_rebuild(assessment)})"])
    log.info(f"{what[0]} {what[1]} at {instance.venv} for {summary(build)}: "
             f"{len(pins)} recorded package(s), {len(requirement_files)} node requirements file(s)")
    temporary = instance.venv_building(secrets.token_hex(4))
    try:
        builder.create(temporary, instance.venv, assessment.base_python, build, user, environ)
        _reinstall(temporary, pins, requirement_files, user, environ)
        builder.point_scripts_at(temporary, instance.venv)
        builder.write_tag(temporary, build, user, {"pins": pins, "requirement_files": requirement_files},
                          final=instance.venv)
    except (builder.BuildFailed, OSError) as error:
        shutil.rmtree(temporary, ignore_errors=True)  # ours alone, never used by anyone
        raise _failed(instance, build, old, getattr(error, "line", None) or str(error)) from None
    moved = None
    try:
        if old is not None:
            moved = _move_aside(instance, build)
            log.info(f"moved the old environment to {moved} (kept: delete it when you no longer need it)")
        _rename(temporary, instance.venv, build)
    except CannotCreateError:
        if moved is not None:
            os.rename(moved, instance.venv)  # put the old one back: it was whole a moment ago
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    _keep_restored_list(instance, old)
    log.info(f"environment ready at {instance.venv}")
    return {"moved_to": moved, "pins": pins, "requirement_files": requirement_files}


def _why_rebuild(assessment):
    if assessment.differences:
        return f"made for another image: {'; '.join(assessment.differences)}"
    return "asked for: it matches this image"


def _reinstall(temporary, pins, requirement_files, user, environ):
    """The old environment's own packages at their versions, and every node's requirements; when
    those versions cannot all be had for this image, the same names at any version that fits."""
    from comfy_init.venv import build as builder

    try:
        builder.install(temporary, pins, requirement_files, user, environ)
    except builder.BuildFailed as error:
        if not pins:
            raise
        log.warning(f"the recorded versions cannot be reinstalled ({error.line}): trying the same packages "
                    "at versions that fit this image")
        names = [pin.split("==", 1)[0] for pin in pins]
        builder.install(temporary, names, requirement_files, user, environ)


def _move_aside(instance, build):
    from comfy_init.store.clock import utc_stamp

    stamp = utc_stamp()
    target, number = instance.venv_moved(stamp), 1
    while os.path.lexists(target):
        number += 1
        target = instance.venv_moved(f"{stamp}-{number}")
    _rename(instance.venv, target, build)
    return target


def _remove_unfinished(instance):
    """Temporaries without a tag are half-made by a killed rebuild: ours, never used, removed.
    With venv/ in place, a complete one is stale too (no swap is pending: that state has no venv/)."""
    import shutil

    in_place = os.path.lexists(instance.venv)
    for path in _temporaries(instance):
        if in_place or not os.path.isfile(os.path.join(path, TAG_FILE)):
            shutil.rmtree(path, ignore_errors=True)


def _keep_restored_list(instance, old):
    """A restore's list, once installed, moves into the environment made from it (only after the
    swap: a kill before that leaves it for the next attempt)."""
    if old is None and os.path.isfile(instance.venv_restored):
        try:
            os.replace(instance.venv_restored, os.path.join(instance.venv, os.path.basename(instance.venv_restored)))
        except OSError:
            pass  # stays beside: only a fresh environment (none now) would read it again


def _failed(instance, build, old, why):
    kept = f"the environment at {instance.venv} is unchanged" if old else f"nothing was left at {instance.venv}"
    return CannotCreateError(Problem(
        "venv-failed", f"cannot make the Python environment for {summary(build)}: {why}; {kept}",
        path=instance.venv, fix="make the requirements installable (network, index, a node's pins), then start "
        "again; or start with COMFY_VENV=off to run in the image's environment"))
