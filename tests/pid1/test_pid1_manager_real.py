"""The REAL ComfyUI-Manager 4 (the `comfyui-manager` package from PyPI) under comfy-init.

The stand-in ComfyUI does what ComfyUI's main.py does with --enable-manager: it imports the
installed comfyui_manager package and calls its prestartup(), with a folder_paths module that
answers the few questions the package asks (tests/standin_comfyui/folder_paths.py). Everything
after that is the package's own code: it reads <user>/__manager/config.ini, runs the install
script queued in <user>/__manager/startup-scripts/, and then restarts the way it does under a
launcher: it writes <__COMFY_CLI_SESSION__>.reboot and exits 0. comfy-init must start ComfyUI again
under the same claim, once.
"""

import signal

import pytest

from tests.support.manager import real_manager_python, release_checkout
from tests.support.pid1 import Setup

pytestmark = [pytest.mark.pid1, pytest.mark.usefixtures("pid_namespace")]

MANAGER_START = 90  # the package lists the installed packages with pip on every start: seconds


@pytest.fixture(scope="module")
def manager_python():
    return real_manager_python()


def manager4_setup(tmp_path, instance_id, data=None):
    setup = Setup(tmp_path / instance_id, instance_id)
    setup.app = release_checkout(tmp_path / instance_id / "comfyui-0.38", manager4=True)
    if data is not None:
        setup.data = data
    return setup


def queue_install_script(setup, python, marker):
    """What the Manager queues when a node pack needs a step at the next start; `#FORCE` runs it."""
    scripts = setup.instance_dir / "user" / "__manager" / "startup-scripts"
    scripts.mkdir(parents=True)
    command = [str(setup.instance_dir), "#FORCE", str(python), "-c", f"open({str(marker)!r}, 'a').write('ran\\n')"]
    (scripts / "install-scripts.txt").write_text(repr(command) + "\n")
    return scripts / "install-scripts.txt"


def test_the_real_manager_restart_restarts_comfyui_under_the_same_claim(tmp_path, launch, manager_python):
    setup = manager4_setup(tmp_path, "real-manager")
    marker = tmp_path / "install-script-ran"
    queued = queue_install_script(setup, manager_python, marker)
    run = launch(setup.env(COMFY_PYTHON=manager_python, COMFY_MANAGER="on"))

    [first] = setup.wait_event("started", timeout=30)
    claim_before = setup.registry()["claims"][setup.instance_id]
    [serving] = setup.wait_event("serving", timeout=2 * MANAGER_START)
    stats = run.wait_ready()

    started = setup.events("started")
    assert [e["pid"] for e in started] == [first["pid"], serving["pid"]] and first["pid"] != serving["pid"]
    assert all("--enable-manager" in e["argv"] for e in started)
    assert [e["pid"] for e in setup.events("manager_prestartup")] == [first["pid"], serving["pid"]]
    assert all(e["manager"].startswith(str(manager_python.parent.parent)) for e in setup.events("manager_prestartup"))
    assert [(e["pid"], e["code"]) for e in setup.events("manager_exit")] == [(first["pid"], 0)]
    assert stats["system"]["pid"] == serving["pid"]
    assert marker.read_text() == "ran\n", "the queued script ran once, at the first start"
    assert not queued.exists(), "the Manager consumed its queue"
    assert not setup.session_reboot_file.exists(), "comfy-init removes the .reboot file it acted on"
    assert run.stderr().count("ComfyUI-Manager asked for a restart") == 1
    assert "Restarting to reapply dependency installation" in run.output()

    claim_after = setup.registry()["claims"][setup.instance_id]
    assert (claim_after["token"], claim_after["generation"]) == (claim_before["token"], claim_before["generation"])

    run.send(signal.SIGTERM)
    assert run.wait(timeout=20) == 0, run.output()
    assert len(setup.events("started")) == 2


def test_two_instances_keep_their_own_manager_data_and_migrate_their_own_old_folder(
        tmp_path, launch, manager_python):
    a = manager4_setup(tmp_path, "manager-a")
    b = manager4_setup(tmp_path, "manager-b", data=a.data)
    marker = tmp_path / "a-script-ran"
    queue_install_script(a, manager_python, marker)
    # b ran the custom-node Manager before: its settings are in the old folder, file logging off.
    legacy = b.instance_dir / "user" / "default" / "ComfyUI-Manager"
    (legacy / "snapshots").mkdir(parents=True)
    (legacy / "snapshots" / "before.json").write_text("{}")
    (legacy / "config.ini").write_text("[default]\nsecurity_level = weak\nfile_logging = false\n")

    run_a = launch(a.env(COMFY_PYTHON=manager_python))  # COMFY_MANAGER=auto finds the package
    run_b = launch(b.env(COMFY_PYTHON=manager_python))
    a.wait_event("serving", timeout=2 * MANAGER_START)
    b.wait_event("serving", timeout=2 * MANAGER_START)
    run_a.wait_ready()
    run_b.wait_ready()

    assert len(a.events("started")) == 2 and len(b.events("started")) == 1, "only a's Manager restarted"
    assert marker.read_text() == "ran\n"
    a_manager, b_manager = a.instance_dir / "user" / "__manager", b.instance_dir / "user" / "__manager"
    assert not (b_manager / "startup-scripts" / "install-scripts.txt").exists()
    # b's old folder went into b's own __manager, and the real Manager read the migrated config:
    assert not legacy.exists()
    assert (b_manager / ".legacy-manager-backup" / "snapshots" / "before.json").exists()
    migrated = (b_manager / "config.ini").read_text()
    assert "security_level = normal" in migrated and "file_logging = false" in migrated
    assert f"** ComfyUI-Manager config path: {b_manager / 'config.ini'}" in run_b.output()
    assert f"** ComfyUI-Manager config path: {a_manager / 'config.ini'}" in run_a.output()
    assert "Log path: file logging is disabled" in run_b.output()
    assert list((b.instance_dir / "user").glob("comfyui_*.log")) == []
    assert list((a.instance_dir / "user").glob(f"comfyui_{a.port}.log")), "a keeps its own Manager log"
    assert not (a_manager / ".legacy-manager-backup").exists() and not (a_manager / "config.ini").exists()
    assert "migrated" not in run_a.stderr()

    for run in (run_a, run_b):
        run.send(signal.SIGTERM)
        assert run.wait(timeout=20) == 0, run.output()
