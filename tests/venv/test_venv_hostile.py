"""Hostile review of the per-instance environments (issue 13): real venvs, real pip, wheels built
here, no network. Each test is one attack a user could run into; see the report of review13."""

import builtins
import json
import os
import subprocess
import sys

import pytest

from comfy_init.layout import InstancePaths
from comfy_init.venv import environment
from tests.support.ports import free_port
from tests.support.processes import instance_env
from tests.venv.conftest import imported, offline, write_build_file
from tests.venv.test_run_venv import app, start, venv_of  # noqa: F401 (fixtures)


def _instance_paths(data, instance_id):
    return InstancePaths(instance_id, str(data / "instances" / instance_id))


# -- isolation: what the environment's files name ---------------------------------------------------

def test_activate_scripts_name_the_environment_not_the_temporary_it_was_built_in(tmp_path, start):
    # `docker exec ... sh -c '. /data/instances/a/venv/bin/activate && pip install x'` is how
    # users install into "their" environment by hand. venv writes VIRTUAL_ENV into the activate
    # scripts; the environment was made under .venv.building-<hex>, which is gone after the swap:
    # activating then puts a missing bin/ first on PATH and `python`/`pip` are the IMAGE's, so the
    # install lands in /opt/venv, shared by every instance.
    done, _report = start("a")
    assert done.returncode == 0, done.stderr
    venv = venv_of(tmp_path, "a")
    for name in ("activate", "activate.csh", "activate.fish"):
        text = (venv / "bin" / name).read_text()
        assert ".venv.building-" not in text, name
        assert str(venv) in text, name
    shell = subprocess.run(["bash", "-c", f". {venv}/bin/activate && command -v python"], capture_output=True,
                           text=True, env={"PATH": os.environ["PATH"]})
    assert shell.stdout.strip() == str(venv / "bin" / "python")


def test_a_data_root_with_a_space_keeps_pip_usable_in_the_instance(tmp_path, app, image, wheelhouse):  # noqa: F811
    # A host data root such as "/srv/My Data": pip splits `constraint = ...` of pip.conf and
    # PIP_CONSTRAINT on whitespace, so every install in the instance (the Manager's, a node's)
    # fails with "Could not open requirements file" for "/srv/My".
    data = tmp_path / "my data"
    report = tmp_path / "report.json"
    env = instance_env(instance_id="a", data=data, app=app, port=free_port(), COMFY_PYTHON=image,
                       FAKE_REPORT=report, FAKE_INSTALL="foo==2.0")
    env = dict(offline(wheelhouse), **{k: v for k, v in env.items() if not k.startswith("PIP_")})
    done = subprocess.run([sys.executable, "-m", "comfy_init", "run"], env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    installed = json.loads(report.read_text())["install"]
    assert installed["returncode"] == 0, installed["output"]
    python = data / "instances" / "a" / "venv" / "bin" / "python"
    assert imported(python, "foo")[0] == "2.0"
    # And from a shell (pip.conf alone), torch is still protected.
    refused = subprocess.run([str(python), "-m", "pip", "install", "torch==9.0"], capture_output=True, text=True,
                             env=offline(wheelhouse))
    assert refused.returncode != 0 and "(constraint) torch==1.0" in refused.stdout + refused.stderr
    assert imported(python, "torch")[0] == "1.0"


# -- can an install replace torch? -------------------------------------------------------------------

def _comfyui_pip(python, report, wheelhouse, *args, **env):
    """pip as ComfyUI's own process runs it: its PIP_CONSTRAINT (from the report) and the offline index."""
    environ = dict(offline(wheelhouse), PIP_CONSTRAINT=report["pip_constraint"], **env)
    return subprocess.run([str(python), "-m", "pip", "install", *args], capture_output=True, text=True, env=environ)


def test_no_spelling_of_an_install_replaces_the_images_torch(tmp_path, start, wheelhouse):
    done, report = start("a")
    assert done.returncode == 0, done.stderr
    python = venv_of(tmp_path, "a") / "bin" / "python"
    wheel = next(wheelhouse.glob("torch-9.0-*.whl"))
    attacks = (["--force-reinstall", "torch==9.0"], ["--no-deps", "torch==9.0"], ["-U", "--no-deps", "torch>=2"],
               [str(wheel)], ["--force-reinstall", "--no-deps", str(wheel)], ["-c", os.devnull, "torch==9.0"],
               ["--isolated", "torch==9.0"], ["needs-new-torch"])
    for attack in attacks:
        refused = _comfyui_pip(python, report, wheelhouse, *attack)
        assert refused.returncode != 0, (attack, refused.stdout)
        assert "torch==1.0" in refused.stdout + refused.stderr, attack  # the message names the constraint
        assert imported(python, "torch")[0] == "1.0", attack
    # `--no-deps` of a package that needs another torch installs it but never touches torch.
    _comfyui_pip(python, report, wheelhouse, "--no-deps", "needs-new-torch")
    assert imported(python, "torch")[0] == "1.0"


def test_an_empty_pip_constraint_in_the_containers_environment_does_not_drop_the_constraints(tmp_path, start,
                                                                                              wheelhouse):
    done, report = start("a", PIP_CONSTRAINT="")
    assert done.returncode == 0, done.stderr
    assert report["pip_constraint"] == str(venv_of(tmp_path, "a") / "comfy-init-constraints.txt")


@pytest.mark.xfail(strict=True, reason="design: an environment variable PIP_CONSTRAINT overrides the "
                   "environment's pip.conf (pip reads variables after config files); a container started with "
                   "its own PIP_CONSTRAINT lets a shell's pip in the instance replace torch. ComfyUI's own "
                   "processes get both files; only a shell (docker exec) is open")
def test_a_user_pip_constraint_in_the_container_does_not_unprotect_torch_in_a_shell(tmp_path, start, wheelhouse):
    done, _report = start("a")
    assert done.returncode == 0, done.stderr
    python = venv_of(tmp_path, "a") / "bin" / "python"
    own = tmp_path / "mine.txt"
    own.write_text("bar==1.0\n")
    # docker run -e PIP_CONSTRAINT=/mine.txt ...; then docker exec ... venv/bin/python -m pip install torch==9.0
    shell = subprocess.run([str(python), "-m", "pip", "install", "torch==9.0"], capture_output=True, text=True,
                           env=dict(offline(wheelhouse), PIP_CONSTRAINT=str(own)))
    assert imported(python, "torch")[0] == "1.0", shell.stdout


# -- start-up cost: a matching environment costs no process and no walk ------------------------------

def test_a_matching_environment_is_used_without_any_process_or_listing(tmp_path, start, image, monkeypatch):
    done, _report = start("a")
    assert done.returncode == 0, done.stderr
    instance = _instance_paths(tmp_path / "data", "a")
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args[:1])
        raise AssertionError(f"a process was started: {args[:1]}")

    for name in ("Popen", "run"):
        monkeypatch.setattr(subprocess, name, refuse)
    for module, name in ((os, "listdir"), (os, "scandir"), (os, "walk")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: opened.append(str(path)) or real_open(path, *a, **k))
    assessment = environment.assess(instance, str(image), str(tmp_path / "comfyui"))
    assert assessment.state == environment.READY
    assert environment.ensure(assessment) == instance.venv_python
    assert calls == []
    assert sorted(opened) == sorted([str(image.parents[1] / "comfy-init-build.json"), instance.venv_tag])


# -- data: what a rebuild may touch ------------------------------------------------------------------

def test_a_venv_that_is_a_link_to_another_instances_environment_is_never_rebuilt_through(tmp_path, start, image):
    # A user linked a's venv to b's ("share one environment"). A rebuild of a (here: an image
    # update) must move the LINK aside, never b's environment, and must not install into b.
    assert start("b", FAKE_INSTALL="foo==3.0")[0].returncode == 0
    b_venv = venv_of(tmp_path, "b")
    a_root = b_venv.parent.parent / "a"
    a_root.mkdir()
    (a_root / "venv").symlink_to(b_venv)
    b_tag = (b_venv / "comfy-init-venv.json").read_text()
    b_files = sorted(str(path.relative_to(b_venv)) for path in b_venv.rglob("*"))
    write_build_file(image, comfyui="0.99.0")
    done, report = start("a")
    assert done.returncode == 0, done.stderr
    assert (b_venv / "comfy-init-venv.json").read_text() == b_tag
    assert sorted(str(path.relative_to(b_venv)) for path in b_venv.rglob("*")) == b_files
    assert imported(b_venv / "bin" / "python", "foo")[0] == "3.0"
    moved = sorted(a_root.glob("venv.moved-*"))
    assert len(moved) == 1 and moved[0].is_symlink() and os.readlink(moved[0]) == str(b_venv)
    assert not (a_root / "venv").is_symlink() and report["prefix"] == str(a_root / "venv")
    assert report["foo"] == "3.0"  # what a used (b's packages, through the link) is reinstalled into a's own


def test_a_venv_that_is_a_plain_file_is_moved_aside_whole(tmp_path, start):
    root = tmp_path / "data" / "instances" / "a"
    root.mkdir(parents=True)
    (root / "venv").write_text("my notes, not an environment\n")
    done, report = start("a")
    assert done.returncode == 0, done.stderr
    moved = sorted(root.glob("venv.moved-*"))
    assert len(moved) == 1 and moved[0].read_text() == "my notes, not an environment\n"
    assert report["prefix"] == str(root / "venv")


def test_a_link_planted_as_a_temporary_is_not_followed_by_the_cleanup(tmp_path, start):
    # .venv.building-* without a tag is removed at the next rebuild: a link of that name (to the
    # user's own folder) must not lose the folder's files.
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    root = tmp_path / "data" / "instances" / "a"
    root.mkdir(parents=True)
    (root / ".venv.building-deadbeef").symlink_to(precious)
    done, _report = start("a")
    assert done.returncode == 0, done.stderr
    assert (precious / "keep.txt").read_text() == "keep"


@pytest.mark.xfail(strict=True, reason="design: pip resolves local paths in a requirements file against its "
                   "working directory (comfy-init's), not the file's folder; comfy-init installs every node's "
                   "requirements.txt in one pip call, so a node that ships a wheel and names it relatively "
                   "(as the Manager, which runs pip in the node's folder, allows) stops every start with 73")
def test_a_node_requirement_naming_a_wheel_beside_it_is_installed(tmp_path, start):
    from tests.support.wheels import write_wheel

    node = tmp_path / "data" / "instances" / "a" / "custom_nodes" / "shipped"
    write_wheel(node / "wheels", "localpkg", "1.0")
    (node / "requirements.txt").write_text("wheels/localpkg-1.0-py3-none-any.whl\n")
    done, _report = start("a")
    assert done.returncode == 0, done.stderr
    assert imported(venv_of(tmp_path, "a") / "bin" / "python", "localpkg")[0] == "1.0"


def test_a_data_root_mounted_at_another_path_keeps_pip_usable_in_the_instance(tmp_path, app, image, wheelhouse):  # noqa: F811
    # The same volume at another mount point (/data locally, /workspace/data on a cloud host; a host
    # run of a container's tree): the environment's pip.conf, scripts and activate name the old
    # path, and the tag (the image build) still matches, so nothing would be rebuilt: ComfyUI's own
    # installs work (PIP_CONSTRAINT names the new path) but a shell's pip fails on the missing
    # constraints file, and the activate script and every installed script name the old place.
    def run(data, **extra):
        report = tmp_path / "report.json"
        report.unlink(missing_ok=True)
        env = instance_env(instance_id="a", data=data, app=app, port=free_port(), COMFY_PYTHON=image,
                           FAKE_REPORT=report, **extra)
        env = dict(offline(wheelhouse), **{k: v for k, v in env.items() if not k.startswith("PIP_")})
        done = subprocess.run([sys.executable, "-m", "comfy_init", "run"], env=env, capture_output=True, text=True,
                              timeout=180)
        return done, (json.loads(report.read_text()) if report.exists() else None)

    first, _report = run(tmp_path / "data", FAKE_INSTALL="bar==1.0")
    assert first.returncode == 0, first.stderr
    (tmp_path / "mnt").mkdir()
    os.rename(tmp_path / "data", tmp_path / "mnt" / "data")
    again, report = run(tmp_path / "mnt" / "data", FAKE_INSTALL="foo==2.0")
    assert again.returncode == 0, again.stderr
    assert report["install"]["returncode"] == 0, report["install"]["output"]
    venv = tmp_path / "mnt" / "data" / "instances" / "a" / "venv"
    assert imported(venv / "bin" / "python", "bar")[0] == "1.0"  # what it had is reinstalled
    old = str(tmp_path / "data") + os.sep
    assert old not in (venv / "pip.conf").read_text()
    assert old not in (venv / "bin" / "activate").read_text()
    shell = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "foo==3.0"], capture_output=True,
                           text=True, env=offline(wheelhouse))
    assert shell.returncode == 0, shell.stdout + shell.stderr
