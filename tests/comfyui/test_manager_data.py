"""The custom-node Manager's folder (user/default/ComfyUI-Manager) migrated into the instance's own
user/__manager the way the Manager does it: config.ini only, a low security level raised to
'normal', the old folder moved to __manager/.legacy-manager-backup; but nothing is ever deleted."""

import configparser

from comfy_init.comfyui.manager_data import migrate_legacy


def old_manager_folder(user, security_level="weak"):
    legacy = user / "default" / "ComfyUI-Manager"
    (legacy / "snapshots").mkdir(parents=True)
    (legacy / "snapshots" / "2025-11-01_10-00-00_snapshot.json").write_text('{"custom_nodes": {}}')
    (legacy / "config.ini").write_text(f"[default]\nsecurity_level = {security_level}\nfile_logging = false\n")
    return legacy


def read_config(path):
    config = configparser.ConfigParser()
    config.read(path)
    return dict(config["default"])


def test_config_migrated_and_old_folder_moved_to_the_backup(tmp_path):
    user = tmp_path / "user"
    legacy = old_manager_folder(user)
    info, warnings = migrate_legacy(str(user))
    assert warnings == [] and len(info) == 2 and "raised to 'normal'" in info[0]
    assert read_config(user / "__manager" / "config.ini") == {"security_level": "normal", "file_logging": "false"}
    backup = user / "__manager" / ".legacy-manager-backup"
    assert not legacy.exists()
    assert (backup / "snapshots" / "2025-11-01_10-00-00_snapshot.json").read_text() == '{"custom_nodes": {}}'
    assert "security_level = weak" in (backup / "config.ini").read_text(), "the backup is the old folder as it was"
    assert migrate_legacy(str(user)) == ([], []), "done once"


def test_an_existing_new_config_is_kept_and_the_old_folder_still_moved(tmp_path):
    user = tmp_path / "user"
    old_manager_folder(user, security_level="strong")
    (user / "__manager").mkdir()
    (user / "__manager" / "config.ini").write_text("[default]\nsecurity_level = normal\n")
    info, warnings = migrate_legacy(str(user))
    assert warnings == [] and len(info) == 1
    assert read_config(user / "__manager" / "config.ini") == {"security_level": "normal"}
    assert (user / "__manager" / ".legacy-manager-backup" / "config.ini").exists()


def test_an_existing_backup_is_never_overwritten(tmp_path):
    user = tmp_path / "user"
    legacy = old_manager_folder(user)
    backup = user / "__manager" / ".legacy-manager-backup"
    backup.mkdir(parents=True)
    (backup / "config.ini").write_text("[default]\nsecurity_level = normal-\n")
    info, warnings = migrate_legacy(str(user))
    assert info == [] and len(warnings) == 1 and str(backup) in warnings[0]
    assert (legacy / "config.ini").exists() and (backup / "config.ini").read_text().endswith("normal-\n")
    assert not (user / "__manager" / "config.ini").exists()


def test_nothing_to_do_without_an_old_config(tmp_path):
    user = tmp_path / "user"
    (user / "default" / "ComfyUI-Manager").mkdir(parents=True)  # a folder without config.ini: the Manager skips it
    assert migrate_legacy(str(user)) == ([], [])
    assert not (user / "__manager").exists()
    assert migrate_legacy(str(tmp_path / "no-user-yet")) == ([], [])


def test_each_instance_migrates_into_its_own_folder(tmp_path):
    a, b = tmp_path / "instances" / "a" / "user", tmp_path / "instances" / "b" / "user"
    old_manager_folder(a, "weak")
    old_manager_folder(b, "strong")
    migrate_legacy(str(a))
    migrate_legacy(str(b))
    assert read_config(a / "__manager" / "config.ini")["security_level"] == "normal"
    assert read_config(b / "__manager" / "config.ini")["security_level"] == "strong"
    assert (a / "__manager").resolve() != (b / "__manager").resolve()
