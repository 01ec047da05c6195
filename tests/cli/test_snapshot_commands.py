"""`comfy-init snapshot ...` through click's CliRunner: options, envelopes, exit codes, progress."""

import io

from click.testing import CliRunner

from comfy_init.cli.main import cli
from comfy_init.cli.snapshot.progress import Progress
from tests.support.cli import envelope, invoke





def test_the_group_has_every_subcommand():
    output = CliRunner().invoke(cli, ["snapshot", "--help"]).output
    for name in ("create", "list", "show", "verify", "restore", "prune", "delete"):
        assert f"  {name} " in output


def test_create_list_show_verify_in_text_and_json(tmp_path):
    assert invoke(tmp_path, "instance", "create", "core-7").exit_code == 0
    (tmp_path / "instances" / "core-7" / "custom_nodes" / "n.py").write_text("x")
    text = invoke(tmp_path, "snapshot", "create", "core-7", "--note", "first")
    assert text.exit_code == 0 and "snapshot " in text.output and ".tar.zst" in text.output
    assert "\r" not in text.output  # no progress without a terminal
    document = envelope(tmp_path, "snapshot", "list")
    assert document["command"] == "snapshot list" and document["data"]["snapshots"][0]["note"] == "first"
    name = document["data"]["snapshots"][0]["name"]
    assert "first" in invoke(tmp_path, "snapshot", "list", "core-7").output
    shown = envelope(tmp_path, "snapshot", "show", f"core-7/{name}")
    assert shown["data"]["manifest"]["entries"][0]["path"] == "custom_nodes"
    assert "git node" not in invoke(tmp_path, "snapshot", "show", name).output
    assert envelope(tmp_path, "snapshot", "verify", "core-7")["data"]["files"] == 1


def test_restore_needs_yes_without_a_terminal_64_and_unknown_ones_are_66(tmp_path):
    assert invoke(tmp_path, "instance", "create", "core-7").exit_code == 0
    name = envelope(tmp_path, "snapshot", "create", "core-7")["data"]["name"]
    document = envelope(tmp_path, "snapshot", "restore", name)
    assert (document["exit_code"], document["problems"][0]["kind"]) == (64, "usage")
    assert envelope(tmp_path, "snapshot", "restore", "nothing-here", "--yes")["exit_code"] == 66
    assert envelope(tmp_path, "snapshot", "restore", name, "--to", "Bad_Id", "--yes")["exit_code"] == 64
    assert invoke(tmp_path, "snapshot", "prune", "core-7").exit_code == 2  # click: --keep is required
    assert envelope(tmp_path, "snapshot", "prune", "core-7", "--keep", "5")["data"]["removed"] == []


def test_progress_is_drawn_on_a_terminal_only():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = Progress("archiving", stream)
        progress(3, 5 * 2**20)
        progress.done()
    assert "archiving: 3 files, 5.0 MiB" in terminal.getvalue() and "MiB/s" in terminal.getvalue()
    assert pipe.getvalue() == ""


def test_a_restore_goes_ahead_over_a_claim_whose_holder_died_on_this_host(tmp_path):
    from comfy_init.layout import Layout
    from comfy_init.store.clock import utc_now
    from comfy_init.store.hostid import boot_id
    from comfy_init.store.registry import Registry

    assert invoke(tmp_path, "instance", "create", "core-7").exit_code == 0
    name = envelope(tmp_path, "snapshot", "create", "core-7")["data"]["name"]
    with Registry(Layout(str(tmp_path))).transaction() as document:  # its holder was killed with -9
        document["claims"]["core-7"] = {
            "generation": 1, "token": "t", "host": "h", "boot_id": boot_id(), "container_id": None, "pid": 99999,
            "since": utc_now(), "renewed_at": utc_now(), "heartbeat": 0, "lease_seconds": 30, "port": 8188,
            "listen": "0.0.0.0"}
    result = invoke(tmp_path, "snapshot", "restore", f"core-7/{name}", "--yes")
    assert result.exit_code == 0, result.output
