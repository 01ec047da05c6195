"""Hostile review of the Manager 4 data migration (issue 13): links a user planted, another
instance's folders, ownership, a migration cut short. Real files, the real migration."""

import os
import subprocess

from comfy_init.comfyui.manager_data import migrate_legacy
from tests.comfyui.test_manager_data import old_manager_folder, read_config


def tree_of(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_a_user_default_linked_to_another_instance_does_not_move_that_instances_manager_folder(tmp_path):
    # Sharing workflows between instances: `ln -s ../../a/user/default instances/b/user/default`.
    # b's first start with Manager 4 must not move a's ComfyUI-Manager folder into b's __manager.
    a_user, b_user = tmp_path / "instances" / "a" / "user", tmp_path / "instances" / "b" / "user"
    legacy = old_manager_folder(a_user)
    before = tree_of(legacy)
    b_user.mkdir(parents=True)
    (b_user / "default").symlink_to(a_user / "default")
    info, warnings = migrate_legacy(str(b_user))
    assert info == []
    assert len(warnings) == 1 and str(a_user / "default") in warnings[0] and "not migrated" in warnings[0]
    assert tree_of(legacy) == before, "a's folder stays where a's Manager finds it"
    assert not (b_user / "__manager").exists()
    # a itself still migrates its own folder.
    info, warnings = migrate_legacy(str(a_user))
    assert warnings == [] and (a_user / "__manager" / ".legacy-manager-backup" / "config.ini").exists()


def test_a_manager_folder_linked_outside_the_user_folder_is_never_written_through(tmp_path):
    # user/__manager -> a folder elsewhere (another instance's __manager, or /etc for a root
    # comfy-init): the migration must not write config.ini there or move the old folder there.
    user = tmp_path / "user"
    legacy = old_manager_folder(user)
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (user / "__manager").symlink_to(elsewhere)
    info, warnings = migrate_legacy(str(user))
    assert info == [] and len(warnings) == 1 and "__manager" in warnings[0]
    assert list(elsewhere.iterdir()) == []
    assert (legacy / "config.ini").exists()


def test_a_migration_cut_short_after_the_config_finishes_without_overwriting_it(tmp_path):
    user = tmp_path / "user"
    legacy = old_manager_folder(user, "weak")
    manager = user / "__manager"
    manager.mkdir()
    # The crash: config.ini written (and the user changed it since), the old folder not yet moved,
    # a temporary of an even earlier attempt left behind.
    (manager / "config.ini").write_text("[default]\nsecurity_level = strong\n")
    (manager / "config.ini.comfy-init-tmp").write_text("half")
    info, warnings = migrate_legacy(str(user))
    assert warnings == [] and len(info) == 1
    assert read_config(manager / "config.ini") == {"security_level": "strong"}
    assert not legacy.exists() and (manager / ".legacy-manager-backup" / "config.ini").exists()


def test_what_the_migration_makes_belongs_to_puid_and_the_backup_keeps_its_owner(tmp_path):
    if os.geteuid() != 0:
        import pytest

        pytest.skip("needs root to give files away")
    user = tmp_path / "user"
    legacy = old_manager_folder(user)
    os.chown(legacy, 4321, 4321)
    migrate_legacy(str(user), 1234, 1235)
    manager = user / "__manager"
    assert (os.stat(manager).st_uid, os.stat(manager).st_gid) == (1234, 1235)
    config = os.stat(manager / "config.ini")
    assert (config.st_uid, config.st_gid) == (1234, 1235)
    assert os.stat(manager / ".legacy-manager-backup").st_uid == 4321


# -- COMFY_MANAGER and the instance environment ------------------------------------------------------

from tests.support.wheels import write_wheel  # noqa: E402
from tests.venv.conftest import base, image, offline, wheelhouse  # noqa: E402,F401 (fixtures)
from tests.venv.test_run_venv import app, start, venv_of  # noqa: E402,F401 (fixtures)


def test_a_manager_installed_into_the_instance_environment_is_found(tmp_path, start, wheelhouse):  # noqa: F811
    # A core image (no Manager in /opt/venv): the user installs ComfyUI-Manager 4 into the instance's
    # own environment, where installs survive `docker rm` (the point of the environments). ComfyUI
    # runs with that environment's python and would import it; COMFY_MANAGER=on must not be refused
    # with a fix that installs into the image, and auto must pass --enable-manager.
    done, report = start("a")
    assert done.returncode == 0, done.stderr
    assert "--enable-manager" not in report["argv"]
    python = venv_of(tmp_path, "a") / "bin" / "python"
    wheel = write_wheel(tmp_path / "wheels", "comfyui-manager", "4.0.3")
    subprocess.run([str(python), "-m", "pip", "install", wheel], check=True, capture_output=True,
                   env=offline(wheelhouse))
    for mode in ("on", "auto"):
        done, report = start("a", COMFY_MANAGER=mode)
        assert done.returncode == 0, (mode, done.stderr)
        assert "--enable-manager" in report["argv"], mode
