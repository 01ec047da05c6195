"""`comfy-init template create|list|show|apply|delete` and `instance create --template` through
click's CliRunner, on real files and real git repositories with local file:// remotes."""

import json
import os
import subprocess

import pytest
import yaml
from click.testing import CliRunner

from comfy_init.cli.main import cli
from comfy_init.layout import Layout
from comfy_init.store.registry import Registry
from tests.support.cli import envelope, invoke

SECRETS = ("sk-civitai-SECRET-1", "hf_SECRET_2", "ghp_SECRET_3", "pw-SECRET-4")
SETTINGS = {"Comfy.ColorPalette": "light", "Comfy.Keybinding.NewBindings": [{"commandId": "x", "combo": {"key": "k"}}],
            "Comfy.LinkRenderMode": 2, "CivitAI.ApiKey": SECRETS[0], "hf.key": SECRETS[1],
            "Nested": {"password": SECRETS[3], "kept": 1}}
KEYBINDINGS = '[{"commandId": "Comfy.QueuePrompt", "combo": {"key": "p", "ctrl": true}}]'
MANAGER_INI = (f"[default]\npreview_method = auto\ngithub_token = {SECRETS[2]}\n"
               "; a comment stays\nsecurity_level = normal\n")




def kind(document):
    return document["exit_code"], document["problems"][0]["kind"]


def git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(path, files, commits=1):
    """A git repository at `path` with `commits` commits; returns (file:// URL, [commit ids])."""
    path.mkdir(parents=True)
    git("init", "-q", cwd=path)
    git("config", "user.name", "Test", cwd=path)
    git("config", "user.email", "test@example.invalid", cwd=path)
    ids = []
    for number in range(commits):
        for name, text in files.items():
            (path / name).write_text(text)
        (path / "version.txt").write_text(str(number))
        git("add", ".", cwd=path)
        git("commit", "-q", "-m", f"commit {number}", cwd=path)
        ids.append(git("rev-parse", "HEAD", cwd=path))
    return f"file://{path}", ids


def instance_dir(data, instance_id):
    return data / "instances" / instance_id


@pytest.fixture
def source(tmp_path):
    """Data tree with instance src-1: settings with secrets, Manager config, a git node at its first
    of two commits, a registry node, a plain folder and a single-file node. Returns (data, facts)."""
    data = tmp_path / "data"
    assert invoke(data, "instance", "create", "src-1").exit_code == 0
    root = instance_dir(data, "src-1")
    (root / "user" / "default").mkdir(parents=True)
    (root / "user" / "default" / "comfy.settings.json").write_text(json.dumps(SETTINGS, indent=4))
    (root / "user" / "default" / "comfy.keybindings.json").write_text(KEYBINDINGS)
    (root / "user" / "__manager").mkdir()
    (root / "user" / "__manager" / "config.ini").write_text(MANAGER_INI)
    url, commits = make_repo(tmp_path / "remotes" / "node-git",
                             {"requirements.txt": "numpy>=1.26  # arrays\n\n# comment\nopencv-python\n",
                              "__init__.py": "NODE_CLASS_MAPPINGS = {}\n"}, commits=2)
    node = root / "custom_nodes" / "node-git"
    git("clone", "-q", url, str(node))
    git("checkout", "-q", commits[0], cwd=node)
    registry_node = root / "custom_nodes" / "node-reg"
    registry_node.mkdir()
    (registry_node / "pyproject.toml").write_text(
        '[project]\nname = "comfyui-node-reg"\nversion = "2.1.0"\n[tool.comfy]\nPublisherId = "alice"\n')
    (registry_node / ".tracking").write_text("__init__.py\n")
    (root / "custom_nodes" / "plain-folder").mkdir()
    (root / "custom_nodes" / "single.py").write_text("")
    (root / "custom_nodes" / ".disabled").mkdir()
    return data, {"url": url, "commits": commits}


def test_create_then_apply_to_another_instance_gives_the_same_settings_and_node_list(source):
    data, facts = source
    assert invoke(data, "instance", "create", "dst-1").exit_code == 0
    created = envelope(data, "template", "create", "studio", "--from", "src-1")
    assert created["exit_code"] == 0, created
    applied = envelope(data, "template", "apply", "studio", "dst-1", "--nodes", "clone", "--yes")
    assert applied["exit_code"] == 0, applied
    src, dst = instance_dir(data, "src-1"), instance_dir(data, "dst-1")
    settings = json.loads((dst / "user" / "default" / "comfy.settings.json").read_text())
    expected = {k: v for k, v in SETTINGS.items() if k not in ("CivitAI.ApiKey", "hf.key")}
    expected["Nested"] = {"kept": 1}
    assert settings == expected
    assert (dst / "user" / "default" / "comfy.keybindings.json").read_text() == KEYBINDINGS
    assert (dst / "user" / "__manager" / "config.ini").read_text() == MANAGER_INI.replace(
        f"github_token = {SECRETS[2]}\n", "")
    # The node list captured back from the target matches the source's (the cloned node at its commit).
    again = envelope(data, "template", "create", "copy", "--from", "dst-1")["data"]["template"]["nodes"]
    git_nodes = lambda nodes: [(n["name"], n["git"]) for n in nodes if n["source"] == "git"]  # noqa: E731
    assert git_nodes(again) == git_nodes(created["data"]["template"]["nodes"]) == [
        ("node-git", {"remote": facts["url"], "commit": facts["commits"][0]})]
    assert git("rev-parse", "HEAD", cwd=dst / "custom_nodes" / "node-git") == facts["commits"][0]
    assert (dst / "custom_nodes" / "node-git" / "version.txt").read_text() == "0"
    assert sorted(p.name for p in (dst / "custom_nodes").iterdir()) == ["node-git"]
    entry = Registry(Layout(str(data))).load()["instances"]["dst-1"]
    assert entry["template"] == "studio" and entry["template_applied_at"]
    assert src.is_dir()


def test_secrets_are_left_out_of_the_template_and_the_target_and_reported(source):
    data, _ = source
    assert invoke(data, "instance", "create", "dst-1").exit_code == 0
    created = envelope(data, "template", "create", "studio", "--from", "src-1")
    reported = {(s["file"], s["key"]) for s in created["data"]["template"]["secrets_left_out"]}
    assert reported == {("user/default/comfy.settings.json", "CivitAI.ApiKey"),
                        ("user/default/comfy.settings.json", "hf.key"),
                        ("user/default/comfy.settings.json", "Nested/password"),
                        ("user/__manager/config.ini", "[default] github_token")}
    assert "secrets left out" in invoke(data, "template", "show", "studio").output
    assert invoke(data, "template", "apply", "studio", "dst-1", "--yes").exit_code == 0
    for tree in (data / "meta" / "shared-configs", instance_dir(data, "dst-1")):
        for directory, _, names in os.walk(tree):
            for name in names:
                content = (open(os.path.join(directory, name), "rb").read())
                assert not any(secret.encode() in content for secret in SECRETS), os.path.join(directory, name)


def test_the_node_list_records_git_registry_folder_and_file_nodes_and_requirements(source):
    data, facts = source
    nodes = {n["name"]: n for n in envelope(data, "template", "create", "t", "--from", "src-1")["data"]["template"]["nodes"]}
    assert set(nodes) == {"node-git", "node-reg", "plain-folder", "single.py"}  # .disabled/ left out
    assert nodes["node-git"]["requirements"] == ["numpy>=1.26", "opencv-python"]
    assert nodes["node-reg"]["source"] == "registry"
    assert nodes["node-reg"]["registry"] == {"id": "comfyui-node-reg", "version": "2.1.0", "publisher": "alice"}
    assert (nodes["plain-folder"]["source"], nodes["single.py"]["source"]) == ("folder", "file")
    show = invoke(data, "template", "show", "t").output
    assert f"git {facts['url']} at {facts['commits'][0][:12]}" in show and "registry comfyui-node-reg@2.1.0" in show


def test_apply_reports_and_skips_nodes_it_cannot_clone_or_that_exist(source):
    data, _ = source
    assert invoke(data, "instance", "create", "dst-1").exit_code == 0
    mine = instance_dir(data, "dst-1") / "custom_nodes" / "node-git"
    mine.mkdir()
    (mine / "local.py").write_text("mine")
    assert invoke(data, "template", "create", "t", "--from", "src-1").exit_code == 0
    rows = {r["name"]: r for r in envelope(data, "template", "apply", "t", "dst-1", "--nodes", "clone", "--yes")["data"]["nodes"]}
    assert rows["node-git"]["action"] == "skipped" and "exists" in rows["node-git"]["reason"]
    assert (mine / "local.py").read_text() == "mine" and not (mine / ".git").exists()
    assert "comfyui-node-reg@2.1.0" in rows["node-reg"]["reason"]
    assert {rows["plain-folder"]["action"], rows["single.py"]["action"]} == {"skipped"}


def test_apply_keeps_replaced_settings_beside_them(source):
    data, _ = source
    assert invoke(data, "instance", "create", "dst-1").exit_code == 0
    settings = instance_dir(data, "dst-1") / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"mine": true}')
    assert invoke(data, "template", "create", "t", "--from", "src-1").exit_code == 0
    files = {r["path"]: r for r in envelope(data, "template", "apply", "t", "dst-1", "--yes")["data"]["files"]}
    row = files["user/default/comfy.settings.json"]
    assert row["action"] == "replaced" and os.path.basename(row["backup"]).startswith("comfy.settings.json.before-template-")
    assert open(row["backup"]).read() == '{"mine": true}' and json.loads(settings.read_text())["Comfy.LinkRenderMode"] == 2
    again = {r["path"]: r["action"] for r in envelope(data, "template", "apply", "t", "dst-1", "--yes")["data"]["files"]}
    assert set(again.values()) == {"unchanged"}
    assert len(list(settings.parent.glob("comfy.settings.json.before-template-*"))) == 1


def test_apply_to_a_running_instance_is_refused_and_writes_nothing(source):
    from comfy_init.store import locks

    data, _ = source
    assert invoke(data, "instance", "create", "dst-1").exit_code == 0
    assert invoke(data, "template", "create", "t", "--from", "src-1").exit_code == 0
    lock = locks.try_lock(Layout(str(data)).lock_path("dst-1"))
    try:
        document = envelope(data, "template", "apply", "t", "dst-1", "--nodes", "clone", "--yes")
    finally:
        lock.release()
    assert kind(document) == (75, "instance-held")
    assert not (instance_dir(data, "dst-1") / "user" / "default").exists()
    assert list((instance_dir(data, "dst-1") / "custom_nodes").iterdir()) == []
    assert Registry(Layout(str(data))).load()["instances"]["dst-1"]["template"] is None


def test_a_clone_that_fails_is_reported_and_leaves_nothing(source, tmp_path):
    import shutil

    data, _ = source
    assert invoke(data, "instance", "create", "dst-1").exit_code == 0
    assert invoke(data, "template", "create", "t", "--from", "src-1").exit_code == 0
    shutil.rmtree(tmp_path / "remotes" / "node-git")
    document = envelope(data, "template", "apply", "t", "dst-1", "--nodes", "clone", "--yes")
    assert kind(document) == (1, "node-clone-failed") and "git clone" in document["problems"][0]["fix"]
    assert list((instance_dir(data, "dst-1") / "custom_nodes").iterdir()) == []
    assert (instance_dir(data, "dst-1") / "user" / "default" / "comfy.settings.json").is_file()


def test_the_older_manager_config_is_captured_and_applied_where_it_was(tmp_path):
    data = tmp_path / "data"
    assert invoke(data, "instance", "create", "a").exit_code == 0
    assert invoke(data, "instance", "create", "b").exit_code == 0
    old = instance_dir(data, "a") / "user" / "default" / "ComfyUI-Manager" / "config.ini"
    old.parent.mkdir(parents=True)
    old.write_text("[default]\nchannel_url = https://user:pw-SECRET@example.invalid/x\n")
    created = envelope(data, "template", "create", "t", "--from", "a")["data"]["template"]
    assert created["files"] == ["user/default/ComfyUI-Manager/config.ini"]
    assert created["secrets_left_out"][0]["key"].endswith("(URL credentials)")
    assert invoke(data, "template", "apply", "t", "b", "--yes").exit_code == 0
    assert (instance_dir(data, "b") / "user" / "default" / "ComfyUI-Manager" / "config.ini").read_text() == \
        "[default]\nchannel_url = https://example.invalid/x\n"


def test_credentials_in_a_node_remote_are_left_out(tmp_path):
    data = tmp_path / "data"
    assert invoke(data, "instance", "create", "a").exit_code == 0
    url, _ = make_repo(tmp_path / "remote", {"x.py": ""})
    node = instance_dir(data, "a") / "custom_nodes" / "n"
    git("clone", "-q", url, str(node))
    git("remote", "set-url", "origin", "https://bob:ghp_SECRET@github.invalid/bob/n.git", cwd=node)
    created = envelope(data, "template", "create", "t", "--from", "a")["data"]["template"]
    assert created["nodes"][0]["git"]["remote"] == "https://github.invalid/bob/n.git"
    assert created["secrets_left_out"] == [{"file": "custom_nodes/n/.git/config", "key": "remote URL credentials"}]


def test_args_are_stored_recorded_at_apply_and_passed_by_compose(tmp_path):
    data = tmp_path / "data"
    assert invoke(data, "instance", "create", "a").exit_code == 0
    assert invoke(data, "instance", "create", "b").exit_code == 0
    assert kind(envelope(data, "template", "create", "t", "--from", "a", "--args", "--port 9000")) == (78, "bad-setting")
    assert kind(envelope(data, "template", "create", "t", "--from", "a", "--args", "'open")) == (64, "usage")
    assert envelope(data, "template", "create", "t", "--from", "a", "--args", "--preview-method auto --fp16-vae")[
        "data"]["template"]["cli_args"] == ["--preview-method", "auto", "--fp16-vae"]
    assert invoke(data, "template", "apply", "t", "b", "--yes").exit_code == 0
    assert Registry(Layout(str(data))).load()["instances"]["b"]["cli_args"] == ["--preview-method", "auto", "--fp16-vae"]
    services = yaml.safe_load((data / "meta" / "compose.instances.yml").read_text())["services"]
    assert services["b"]["environment"]["CLI_ARGS"] == "--preview-method auto --fp16-vae"
    assert services["a"]["environment"]["CLI_ARGS"] == "${CLI_ARGS:-}"


def test_instance_create_with_a_template_applies_it(source):
    data, facts = source
    assert invoke(data, "template", "create", "studio", "--from", "src-1").exit_code == 0
    document = envelope(data, "instance", "create", "new-1", "--template", "studio", "--nodes", "clone")
    assert document["exit_code"] == 0, document
    root = instance_dir(data, "new-1")
    assert json.loads((root / "user" / "default" / "comfy.settings.json").read_text())["Comfy.ColorPalette"] == "light"
    assert git("rev-parse", "HEAD", cwd=root / "custom_nodes" / "node-git") == facts["commits"][0]
    assert Registry(Layout(str(data))).load()["instances"]["new-1"]["template"] == "studio"
    assert envelope(data, "instance", "create", "new-2", "--template", "studio")["data"]["template"]["nodes"][0][
        "action"] == "skipped"


def test_instance_create_refuses_an_unknown_template_before_writing_anything(tmp_path):
    data = tmp_path / "data"
    assert kind(envelope(data, "instance", "create", "x-1", "--template", "nope")) == (66, "unknown-template")
    assert kind(envelope(data, "instance", "create", "x-1", "--template", "../etc")) == (64, "usage")
    assert not (data / "instances").exists() and not (data / "meta" / "instance-registry.json").exists()


def test_refusals_by_kind_and_code(source):
    data, _ = source
    assert kind(envelope(data, "template", "create", "bad/name", "--from", "src-1")) == (64, "usage")
    assert kind(envelope(data, "template", "create", ".hidden", "--from", "src-1")) == (64, "usage")
    assert kind(envelope(data, "template", "create", "t", "--from", "nope")) == (66, "unknown-instance")
    assert invoke(data, "template", "create", "t", "--from", "src-1").exit_code == 0
    assert kind(envelope(data, "template", "create", "t", "--from", "src-1")) == (65, "template-exists")
    assert kind(envelope(data, "template", "show", "nope")) == (66, "unknown-template")
    assert kind(envelope(data, "template", "apply", "nope", "src-1", "--yes")) == (66, "unknown-template")
    assert kind(envelope(data, "template", "apply", "t", "ghost", "--yes")) == (66, "unknown-instance")
    assert invoke(data, "template", "apply", "t", "src-1", "--nodes", "maybe", "--yes").exit_code == 2
    assert invoke(data, "template", "apply", "t", "src-1").exit_code == 64  # no terminal, no --yes
    assert invoke(data, "template", "delete", "t").exit_code == 64
    assert kind(envelope(data, "template", "delete", "nope", "--yes")) == (66, "unknown-template")


def test_a_damaged_or_newer_template_is_refused_with_what_is_wrong(source):
    data, _ = source
    assert invoke(data, "template", "create", "t", "--from", "src-1").exit_code == 0
    manifest = data / "meta" / "shared-configs" / "t" / "template.json"
    document = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(dict(document, files=["../../etc/passwd"])))
    shown = envelope(data, "template", "show", "t")
    assert kind(shown) == (65, "template-damaged") and "$.files[0]" in "\n".join(shown["problems"][0]["details"])
    manifest.write_text(json.dumps(dict(document, template_version=2)))
    shown = envelope(data, "template", "show", "t")
    assert kind(shown) == (65, "template-damaged") and "upgrade comfy-init" in shown["problems"][0]["fix"]
    manifest.write_text("{not json")
    listed = envelope(data, "template", "list")
    assert listed["exit_code"] == 65 and listed["data"]["templates"] == [{"name": "t", "valid": False}]
    assert kind(envelope(data, "instance", "create", "x-1", "--template", "t")) == (65, "template-damaged")
    assert not instance_dir(data, "x-1").exists()


def test_list_show_and_delete_into_the_trash(source):
    data, _ = source
    assert invoke(data, "template", "list").output.startswith("no templates")
    assert invoke(data, "template", "create", "t", "--from", "src-1", "--description", "for tests").exit_code == 0
    rows = envelope(data, "template", "list")["data"]["templates"]
    assert [(r["name"], r["source_instance"], r["files"], r["nodes"]) for r in rows] == [("t", "src-1", 3, 4)]
    assert invoke(data, "template", "list").output.splitlines()[0].split() == ["NAME", "FROM", "CREATED", "FILES", "NODES", "ARGS"]
    assert envelope(data, "template", "show", "t")["data"]["template"]["description"] == "for tests"
    moved = envelope(data, "template", "delete", "t", "--yes")["data"]["trash"]
    assert not (data / "meta" / "shared-configs" / "t").exists()
    assert json.loads(open(os.path.join(moved, "template.json")).read())["name"] == "t"
    assert envelope(data, "template", "list")["data"]["templates"] == []


def test_every_template_command_shows_an_example_in_its_help():
    for name in ("create", "list", "show", "apply", "delete"):
        output = CliRunner().invoke(cli, ["template", name, "--help"]).output
        assert "Example:" in output and "--data" in output and "--json" in output, name


def test_apply_keeps_the_target_instances_own_secrets(source):
    data, _ = source
    assert invoke(data, "instance", "create", "dst-1").exit_code == 0
    user = instance_dir(data, "dst-1") / "user"
    (user / "default").mkdir(parents=True)
    (user / "default" / "comfy.settings.json").write_text('{"CivitAI.ApiKey": "mine-1", "Comfy.ColorPalette": "dark"}')
    (user / "__manager").mkdir()
    (user / "__manager" / "config.ini").write_text("[default]\ngithub_token = mine-2\npreview_method = none\n")
    assert invoke(data, "template", "create", "t", "--from", "src-1").exit_code == 0
    files = {r["path"]: r for r in envelope(data, "template", "apply", "t", "dst-1", "--yes")["data"]["files"]}
    settings = json.loads((user / "default" / "comfy.settings.json").read_text())
    assert settings["CivitAI.ApiKey"] == "mine-1" and settings["Comfy.ColorPalette"] == "light"
    assert files["user/default/comfy.settings.json"]["kept_secrets"] == ["CivitAI.ApiKey"]
    assert (user / "__manager" / "config.ini").read_text() == (
        "[default]\ngithub_token = mine-2\npreview_method = auto\n; a comment stays\nsecurity_level = normal\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files away")
def test_as_root_what_apply_creates_goes_to_the_instances_user(source):
    data, _ = source
    assert invoke(data, "instance", "create", "dst-1").exit_code == 0
    root = instance_dir(data, "dst-1")
    os.chown(root / "user", 4321, 4321)
    os.chown(root / "custom_nodes", 4321, 4321)
    assert invoke(data, "template", "create", "t", "--from", "src-1").exit_code == 0
    assert invoke(data, "template", "apply", "t", "dst-1", "--nodes", "clone", "--yes").exit_code == 0
    for path in (root / "user" / "default", root / "user" / "default" / "comfy.settings.json",
                 root / "custom_nodes" / "node-git", root / "custom_nodes" / "node-git" / "version.txt"):
        assert (os.lstat(path).st_uid, os.lstat(path).st_gid) == (4321, 4321), path


def test_apply_refuses_a_settings_folder_that_leads_out_of_the_instance(source, tmp_path):
    data, _ = source
    assert invoke(data, "instance", "create", "dst-1").exit_code == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    (instance_dir(data, "dst-1") / "user" / "default").symlink_to(outside)
    assert invoke(data, "template", "create", "t", "--from", "src-1").exit_code == 0
    assert kind(envelope(data, "template", "apply", "t", "dst-1", "--yes")) == (65, "escapes-root")
    assert list(outside.iterdir()) == [] and not (instance_dir(data, "dst-1") / "user" / "__manager").exists()


def test_instance_create_reports_a_template_that_fails_to_apply_and_keeps_the_instance(source, tmp_path):
    import shutil

    data, _ = source
    assert invoke(data, "template", "create", "t", "--from", "src-1").exit_code == 0
    shutil.rmtree(tmp_path / "remotes" / "node-git")
    document = envelope(data, "instance", "create", "new-1", "--template", "t", "--nodes", "clone")
    assert kind(document) == (1, "node-clone-failed")
    assert document["data"]["id"] == "new-1" and instance_dir(data, "new-1").is_dir()
    assert Registry(Layout(str(data))).load()["instances"]["new-1"]["template"] == "t"


def _claim(data, instance_id, boot):
    from comfy_init.store.clock import utc_now

    with Registry(Layout(str(data))).transaction() as document:
        document["claims"][instance_id] = {
            "generation": 1, "token": "t", "host": "box", "boot_id": boot, "container_id": None, "pid": 7,
            "since": utc_now(), "renewed_at": utc_now(), "heartbeat": 1, "lease_seconds": 30, "port": 9000,
            "listen": "0.0.0.0"}


def test_apply_goes_ahead_over_a_dead_local_claim_and_is_refused_by_a_live_remote_one(source):
    from comfy_init.store.hostid import boot_id

    data, _ = source
    assert invoke(data, "instance", "create", "dst-1").exit_code == 0
    assert invoke(data, "template", "create", "t", "--from", "src-1").exit_code == 0
    _claim(data, "dst-1", boot_id())  # this host, lock free: its holder died without releasing
    assert envelope(data, "template", "apply", "t", "dst-1", "--yes")["exit_code"] == 0
    _claim(data, "dst-1", "another-host")  # renewed just now elsewhere: running there
    document = envelope(data, "template", "apply", "t", "dst-1", "--yes")
    assert kind(document) == (75, "instance-held") and "box" in document["problems"][0]["message"]
