"""`comfy-init instance create|list|show|delete|purge` and `compose` through click's CliRunner."""

import os

import pytest
import yaml
from click.testing import CliRunner

from comfy_init.cli.main import cli
from comfy_init.layout import Layout
from comfy_init.store.registry import Registry
from tests.support.ports import free_port
from tests.support.cli import envelope, invoke





def registry(data):
    return Registry(Layout(str(data))).load()


def test_create_records_the_configuration_and_makes_the_tree_run_needs(tmp_path):
    port = free_port()
    result = invoke(tmp_path, "instance", "create", "core-3", "--port", str(port), "--gpu", "1")
    assert result.exit_code == 0, result.output
    assert "up -d core-3" in result.output and "compose.instances.yml" in result.output
    entry = registry(tmp_path)["instances"]["core-3"]
    assert (entry["variant"], entry["port"], entry["gpus"], entry["share_gpu"]) == ("core", port, ["1"], False)
    instance = tmp_path / "instances" / "core-3"
    assert all((instance / name).is_dir() for name in ("custom_nodes", "user", "temp", "output"))
    assert os.readlink(instance / "models") == "../../shared/models"
    compose = yaml.safe_load((tmp_path / "meta" / "compose.instances.yml").read_text())
    assert compose["services"]["core-3"]["ports"] == [f"{port}:{port}"]


def test_create_picks_the_next_free_port_and_never_one_configured_twice(tmp_path):
    first = envelope(tmp_path, "instance", "create", "a-1")["data"]["config"]["port"]
    second = envelope(tmp_path, "instance", "create", "a-2")["data"]["config"]["port"]
    assert first != second and 8193 <= first <= 8292 and 8193 <= second <= 8292


@pytest.mark.parametrize("bad_id", ["Core", "x-", "a_b", "comfy", "comfy-init", "x" * 64, "core-1", "cpu"])
def test_bad_or_reserved_ids_are_usage_errors(tmp_path, bad_id):
    document = envelope(tmp_path, "instance", "create", bad_id)
    assert (document["exit_code"], document["problems"][0]["kind"]) == (64, "usage")
    assert not (tmp_path / "instances").exists()


def test_an_existing_id_is_refused_and_a_leftover_directory_can_be_adopted(tmp_path):
    assert invoke(tmp_path, "instance", "create", "core-5").exit_code == 0
    document = envelope(tmp_path, "instance", "create", "core-5")
    assert (document["exit_code"], document["problems"][0]["kind"]) == (65, "instance-exists")
    leftover = tmp_path / "instances" / "old-1" / "output"
    leftover.mkdir(parents=True)
    (leftover / "image.png").write_bytes(b"png")
    document = envelope(tmp_path, "instance", "create", "old-1")
    assert document["exit_code"] == 65 and "--adopt" in document["problems"][0]["fix"]
    assert "old-1" not in registry(tmp_path)["instances"]
    assert invoke(tmp_path, "instance", "create", "old-1", "--adopt").exit_code == 0
    assert (leftover / "image.png").read_bytes() == b"png"


def test_a_port_configured_elsewhere_is_65_and_one_in_use_is_75(tmp_path):
    import socket

    port = free_port()
    assert invoke(tmp_path, "instance", "create", "a", "--port", str(port)).exit_code == 0
    document = envelope(tmp_path, "instance", "create", "b", "--port", str(port))
    assert (document["exit_code"], document["problems"][0]["kind"]) == (65, "port-conflict")
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        document = envelope(tmp_path, "instance", "create", "c", "--port", str(busy))
    assert (document["exit_code"], document["problems"][0]["kind"]) == (75, "port-in-use")
    assert set(registry(tmp_path)["instances"]) == {"a"}


def test_a_gpu_is_given_once_unless_both_share_it(tmp_path):
    assert invoke(tmp_path, "instance", "create", "g-1", "--gpu", "0").exit_code == 0
    document = envelope(tmp_path, "instance", "create", "g-2", "--gpu", "0")
    assert (document["exit_code"], document["problems"][0]["kind"]) == (65, "gpu-conflict")
    assert invoke(tmp_path, "instance", "create", "g-3", "--gpu", "1", "--share-gpu").exit_code == 0
    assert invoke(tmp_path, "instance", "create", "g-4", "--gpu", "1", "--share-gpu").exit_code == 0
    assert invoke(tmp_path, "instance", "create", "g-5", "--gpu", "x").exit_code == 2
    assert invoke(tmp_path, "instance", "create", "c-1", "--variant", "cpu", "--gpu", "2").exit_code == 64


def test_create_refuses_a_tree_in_the_way_before_writing_the_registry(tmp_path):
    (tmp_path / "instances").mkdir()
    (tmp_path / "instances" / "x-1").write_text("a file where the instance belongs")
    document = envelope(tmp_path, "instance", "create", "x-1", "--adopt")
    assert document["exit_code"] == 65 and document["problems"][0]["kind"] == "not-a-directory"
    assert "x-1" not in registry(tmp_path)["instances"]


def test_list_shows_configured_orphaned_and_claimed_instances(tmp_path):
    assert invoke(tmp_path, "instance", "create", "core-5").exit_code == 0
    (tmp_path / "instances" / "stray").mkdir()
    with Registry(Layout(str(tmp_path))).transaction() as document:
        document["claims"]["remote-1"] = {
            "generation": 1, "token": "t", "host": "gpu-box-2", "boot_id": "another-host", "container_id": "abc",
            "pid": 7, "since": document["updated_at"], "renewed_at": "2000-01-01T00:00:00Z", "heartbeat": 1,
            "lease_seconds": 30, "port": 9000, "listen": "0.0.0.0"}
    rows = {row["id"]: row for row in envelope(tmp_path, "instance", "list")["data"]["instances"]}
    assert rows["core-5"]["state"] == "stopped" and rows["core-5"]["configured"]
    assert rows["stray"]["state"] == "orphaned directory" and not rows["stray"]["configured"]
    assert rows["remote-1"]["state"] == "stale claim" and rows["remote-1"]["holder"]["host"] == "gpu-box-2"
    text = invoke(tmp_path, "instance", "list").output
    assert text.splitlines()[0].split() == ["ID", "VARIANT", "PORT", "GPU", "STATE", "HEALTH", "VERSION", "HOLDER"]


def test_show_gives_paths_the_command_and_sizes(tmp_path):
    from tests.support.standin import STANDIN_DIR

    assert invoke(tmp_path, "instance", "create", "core-5", "--variant", "cpu").exit_code == 0
    (tmp_path / "instances" / "core-5" / "output" / "a.png").write_bytes(b"12345")
    os.environ["COMFY_APP_DIRECTORY"] = str(STANDIN_DIR)
    try:
        data = envelope(tmp_path, "instance", "show", "core-5", "--sizes")["data"]
    finally:
        del os.environ["COMFY_APP_DIRECTORY"]
    assert data["paths"]["output"] == str(tmp_path / "instances" / "core-5" / "output")
    assert "--cpu" in data["command"] and str(tmp_path / "instances" / "core-5") in data["command"]
    assert data["sizes"]["output"] == {"files": 1, "bytes": 5}
    document = envelope(tmp_path, "instance", "show", "nope")
    assert (document["exit_code"], document["problems"][0]["kind"]) == (66, "unknown-instance")


def test_delete_needs_yes_without_a_terminal_moves_to_trash_and_purge_empties_it(tmp_path):
    assert invoke(tmp_path, "instance", "create", "core-5").exit_code == 0
    (tmp_path / "instances" / "core-5" / "output" / "a.png").write_bytes(b"png")
    refused = invoke(tmp_path, "instance", "delete", "core-5")
    assert refused.exit_code == 64 and (tmp_path / "instances" / "core-5").is_dir()
    data = envelope(tmp_path, "instance", "delete", "core-5", "--yes")["data"]
    assert not (tmp_path / "instances" / "core-5").exists()
    assert open(os.path.join(data["trash"], "output", "a.png"), "rb").read() == b"png"
    undo = invoke(tmp_path, "instance", "list").output  # (listing works on a tree with a trash)
    assert "core-5" not in undo
    assert "core-5" not in registry(tmp_path)["instances"]
    assert [e["path"] for e in envelope(tmp_path, "instance", "list", "--trash")["data"]["trash"]] == [data["trash"]]
    assert invoke(tmp_path, "instance", "purge", "--yes").exit_code == 0
    assert not os.path.exists(data["trash"])


def test_delete_removes_the_models_link_as_a_link_and_never_touches_shared(tmp_path):
    from tests.support.treesnap import snapshot

    assert invoke(tmp_path, "instance", "create", "core-5").exit_code == 0
    checkpoints = tmp_path / "shared" / "models" / "checkpoints"
    for index in range(50):
        (checkpoints / f"model-{index}.safetensors").write_bytes(os.urandom(64))
    before = snapshot(tmp_path / "shared")
    assert invoke(tmp_path, "instance", "delete", "core-5", "--yes").exit_code == 0
    assert invoke(tmp_path, "instance", "purge", "--yes").exit_code == 0
    assert snapshot(tmp_path / "shared") == before


def test_delete_keep_data_only_forgets_the_registry_entry(tmp_path):
    assert invoke(tmp_path, "instance", "create", "core-5").exit_code == 0
    assert invoke(tmp_path, "instance", "delete", "core-5", "--yes", "--keep-data").exit_code == 0
    assert (tmp_path / "instances" / "core-5").is_dir() and "core-5" not in registry(tmp_path)["instances"]


def test_delete_of_a_held_instance_is_refused(tmp_path):
    from comfy_init.store import locks

    assert invoke(tmp_path, "instance", "create", "core-5").exit_code == 0
    lock = locks.try_lock(Layout(str(tmp_path)).lock_path("core-5"))
    try:
        document = envelope(tmp_path, "instance", "delete", "core-5", "--yes")
    finally:
        lock.release()
    assert (document["exit_code"], document["problems"][0]["kind"]) == (75, "instance-held")
    assert (tmp_path / "instances" / "core-5").is_dir()


def test_compose_prints_or_writes_one_service_per_instance(tmp_path):
    assert invoke(tmp_path, "instance", "create", "core-5", "--gpu", "0").exit_code == 0
    assert invoke(tmp_path, "instance", "create", "cpu-5", "--variant", "cpu").exit_code == 0
    services = yaml.safe_load(CliRunner().invoke(cli, ["compose", "--output", "-", "--data", str(tmp_path)]).output)
    assert set(services["services"]) == {"core-5", "cpu-5"}
    core = services["services"]["core-5"]
    assert core["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["0"]
    assert services["services"]["cpu-5"]["environment"]["COMFY_DEVICE"] == "cpu"
    assert core["environment"]["COMFY_INSTANCE_ID"] == "core-5" and core["profiles"] == ["instances"]


def test_every_command_shows_an_example_in_its_help(tmp_path):
    for command in (["instance", "create"], ["instance", "list"], ["instance", "show"], ["instance", "delete"],
                    ["instance", "purge"], ["compose"]):
        assert "Example:" in CliRunner().invoke(cli, [*command, "--help"]).output, command


def test_the_undo_line_of_a_delete_recreates_the_instance_as_it_was(tmp_path):
    import shlex

    port = free_port()
    assert invoke(tmp_path, "instance", "create", "g-1", "--gpu", "1", "--port", str(port)).exit_code == 0
    lines = invoke(tmp_path, "instance", "delete", "g-1", "--yes").output.splitlines()
    move, recreate = lines[1].removeprefix("undo: ").split(" && ")
    os.rename(*shlex.split(move)[1:])
    words = shlex.split(recreate)
    assert words[:5] == ["comfy-init", "instance", "create", "g-1", "--adopt"]
    assert CliRunner().invoke(cli, words[1:]).exit_code == 0
    entry = registry(tmp_path)["instances"]["g-1"]
    assert (entry["variant"], entry["port"], entry["gpus"]) == ("core", port, ["1"])


def test_delete_of_an_instance_whose_holder_died_on_this_host_goes_ahead(tmp_path):
    from comfy_init.store.clock import utc_now
    from comfy_init.store.hostid import boot_id

    assert invoke(tmp_path, "instance", "create", "core-5").exit_code == 0
    with Registry(Layout(str(tmp_path))).transaction() as document:  # a holder killed with -9
        document["claims"]["core-5"] = {
            "generation": 1, "token": "t", "host": "h", "boot_id": boot_id(), "container_id": None, "pid": 99999,
            "since": utc_now(), "renewed_at": utc_now(), "heartbeat": 0, "lease_seconds": 30, "port": 8188,
            "listen": "0.0.0.0"}
    rows = envelope(tmp_path, "instance", "list")["data"]["instances"]
    assert rows[0]["state"] == "stale claim"
    result = invoke(tmp_path, "instance", "delete", "core-5", "--yes")
    assert result.exit_code == 0, result.output
    assert "core-5" not in registry(tmp_path)["claims"]
