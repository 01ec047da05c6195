"""Isolation by construction: settings, arguments and planted files that would let one instance reach
another's data are refused with a documented exit code before anything is written (issue examples)."""

import json
import os
import subprocess
import time

import pytest

from comfy_init.layout import Layout
from comfy_init.store import claims
from comfy_init.store.clock import utc_now
from comfy_init.store.hostid import boot_id
from comfy_init.store.registry import Registry
from tests.support.ports import free_port
from tests.support.processes import COMFY_INIT
from tests.support.standin import STANDIN_DIR
from tests.support.treesnap import snapshot


def run(env, *args):
    return subprocess.run(COMFY_INIT + list(args), env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def env(tmp_path):
    data = tmp_path / "data"
    for instance in ("a", "b"):
        for folder in ("custom_nodes", "user", "temp", "output"):
            (data / "instances" / instance / folder).mkdir(parents=True)
    (data / "shared" / "models").mkdir(parents=True)
    return {"PATH": os.environ["PATH"], "COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "b",
            "COMFY_DATA_DIRECTORY": str(data), "COMFY_APP_DIRECTORY": str(STANDIN_DIR), "COMFY_DEVICE": "cpu",
            "COMFY_PORT": str(free_port()), "COMFY_LISTEN": "127.0.0.1"}


def refused(env, tmp_path, expected_code, *needles, **overrides):
    before = snapshot(tmp_path)
    for args in (["--dry-run"], []):
        result = run(dict(env, **overrides), *args)
        assert result.returncode == expected_code, result.stderr
        assert "Traceback" not in result.stderr
        for needle in needles:
            assert needle in result.stderr, result.stderr
        assert snapshot(tmp_path) == before
    return result


@pytest.mark.parametrize("setting, says", [
    ("{D}/instances/a", "inside the directory of instance 'a'"),
    ("{D}/instances/a/output/b", "inside the directory of instance 'a'"),
    ("{D}/shared", "overlaps COMFY_SHARED_DIRECTORY"),
    ("{D}/shared/models", "overlaps COMFY_SHARED_DIRECTORY"),
    ("{D}/shared/input", "overlaps COMFY_SHARED_DIRECTORY"),
    ("{D}/meta", "overlaps the meta directory"),
    ("{D}", "is the data root"),
    ("{D}/instances", "holds every instance's directory"),
])
def test_an_instance_directory_that_is_not_the_instances_own_is_refused(env, tmp_path, setting, says):
    value = setting.format(D=env["COMFY_DATA_DIRECTORY"])
    refused(env, tmp_path, 78, f"COMFY_INSTANCE_DIRECTORY={value!r}", says, COMFY_INSTANCE_DIRECTORY=value)


@pytest.mark.parametrize("setting", ["{D}/instances/a/temp", "{D}/instances/a", "{D}/instances", "{D}/meta", "{D}"])
def test_a_shared_directory_inside_an_instance_or_meta_is_refused(env, tmp_path, setting):
    # The data loss of the issue: shared models inside a's temp, deleted at a's next start.
    refused(env, tmp_path, 78, "COMFY_SHARED_DIRECTORY", COMFY_SHARED_DIRECTORY=setting.format(D=env["COMFY_DATA_DIRECTORY"]))


@pytest.mark.parametrize("flag", ["--base-directory", "--output-directory", "--temp-directory", "--user-directory",
                                  "--output-dir", "--temp"])
def test_cli_args_pointing_into_another_instance_are_refused(env, tmp_path, flag):
    other = os.path.join(env["COMFY_DATA_DIRECTORY"], "instances", "a", "output")
    refused(env, tmp_path, 78, "inside the directory of instance 'a'", CLI_ARGS=f"{flag} {other}")


def test_a_database_url_of_another_instance_is_refused_and_one_of_our_own_is_not(env, tmp_path):
    theirs = os.path.join(env["COMFY_DATA_DIRECTORY"], "instances", "a", "user", "comfyui.db")
    refused(env, tmp_path, 78, "--database-url", CLI_ARGS=f"--database-url=sqlite:///{theirs}")
    ours = os.path.join(env["COMFY_DATA_DIRECTORY"], "instances", "b", "user", "other.db")
    assert run(dict(env, CLI_ARGS=f"--database-url sqlite:///{ours}"), "--dry-run").returncode == 0
    assert run(dict(env, CLI_ARGS="--database-url sqlite:///:memory:"), "--dry-run").returncode == 0


@pytest.mark.parametrize("arguments", ["--por 8497", "--po=8497", "--lis 127.0.0.1", "--liste=::"])
def test_abbreviated_port_and_listen_are_refused(env, tmp_path, arguments):
    refused(env, tmp_path, 78, "abbreviates it", CLI_ARGS=arguments)
    result = run(env, "--dry-run", "--", *arguments.replace("=", " ").split())
    assert result.returncode == 64 and "abbreviates it" in result.stderr


@pytest.mark.parametrize("listen", ["--cpu", "-", "x" * 300, "1.2.3.4.5", "::zz"])
def test_listen_must_be_addresses_or_host_names(env, tmp_path, listen):
    refused(env, tmp_path, 78, "COMFY_LISTEN=", COMFY_LISTEN=listen)


def test_comfy_python_is_checked_with_the_other_variables(env, tmp_path):
    refused(env, tmp_path, 78, "COMFY_PYTHON='/nonexistent/python'", COMFY_PYTHON="/nonexistent/python")


def test_the_checkout_cannot_be_the_compatibility_base(env, tmp_path):
    checkout = tmp_path / "checkout"
    subprocess.run(["cp", "-r", str(STANDIN_DIR), str(checkout)], check=True)
    compat = {k: v for k, v in env.items() if k not in ("COMFY_MULTI_INSTANCE", "COMFY_INSTANCE_ID")}
    refused(compat, tmp_path, 78, "overlap", COMFY_APP_DIRECTORY=str(checkout), COMFY_BASE_DIRECTORY=str(checkout))


@pytest.mark.parametrize("link", ["temp", "output"])
def test_an_own_folder_linked_into_another_instance_is_refused(env, tmp_path, link):
    data = env["COMFY_DATA_DIRECTORY"]
    folder = os.path.join(data, "instances", "b", link)
    os.rmdir(folder)
    os.symlink(f"../a/{link}", folder)
    refused(env, tmp_path, 65, folder)


def test_a_whole_instance_linked_to_another_is_refused(env, tmp_path):
    data = env["COMFY_DATA_DIRECTORY"]
    subprocess.run(["rm", "-r", os.path.join(data, "instances", "b")], check=True)
    os.symlink("a", os.path.join(data, "instances", "b"))
    refused(env, tmp_path, 65, os.path.join(data, "instances", "b"))


@pytest.mark.parametrize("where", ["meta/instance-registry.json", "meta/instance-registry.json.lock",
                                   "meta/locks/b.lock"])
def test_a_planted_link_in_meta_is_never_followed(env, tmp_path, where):
    data = env["COMFY_DATA_DIRECTORY"]
    path = os.path.join(data, where)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    target = tmp_path / "outside" / "created-by-root"
    os.symlink(str(target), path)
    result = run(env)
    assert result.returncode == 65, result.stderr
    assert "symbolic link" in result.stderr and "Traceback" not in result.stderr
    assert not target.exists() and not target.parent.exists()


@pytest.mark.parametrize("where", ["meta/instance-registry.json", "meta/instance-registry.json.lock"])
def test_a_fifo_in_meta_does_not_hang_the_start(env, tmp_path, where):
    path = os.path.join(env["COMFY_DATA_DIRECTORY"], where)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.mkfifo(path)
    result = run(env)
    assert result.returncode == 65 and "FIFO" in result.stderr, result.stderr


def test_a_registry_that_is_a_directory_is_65_not_74(env, tmp_path):
    os.makedirs(os.path.join(env["COMFY_DATA_DIRECTORY"], "meta", "instance-registry.json"))
    result = run(env)
    assert result.returncode == 65 and "is a directory, not a regular file" in result.stderr


@pytest.mark.parametrize("obstacle", ["file", "fifo", "loop"])
@pytest.mark.parametrize("where", ["", "shared", "shared/models", "instances", "instances/b", "meta"])
def test_anything_but_a_directory_above_a_leaf_is_65_not_a_traceback(tmp_path, obstacle, where):
    data = tmp_path / "data"
    data.parent.mkdir(exist_ok=True)
    path = data / where if where else data
    path.parent.mkdir(parents=True, exist_ok=True)
    if obstacle == "file":
        path.write_text("x")
    elif obstacle == "fifo":
        os.mkfifo(path)
    else:
        os.symlink(path.name, path)  # a link to itself
    env = {"PATH": os.environ["PATH"], "COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "b",
           "COMFY_DATA_DIRECTORY": str(data), "COMFY_APP_DIRECTORY": str(STANDIN_DIR), "COMFY_DEVICE": "cpu",
           "COMFY_PORT": str(free_port()), "COMFY_LISTEN": "127.0.0.1"}
    result = refused(env, tmp_path, 65, str(path))
    assert result.stderr.count("ERROR:") >= 1


def test_an_over_long_instance_directory_is_a_setting_problem(env, tmp_path):
    long = os.path.join(env["COMFY_DATA_DIRECTORY"], "instances", "b", "x" * 300)
    result = run(dict(env, COMFY_INSTANCE_DIRECTORY=long), "--dry-run")
    assert result.returncode in (78, 65) and "Traceback" not in result.stderr


def test_a_missing_parent_of_the_instance_directory_fails_the_dry_run_too(env, tmp_path):
    elsewhere = str(tmp_path / "missing" / "parent" / "b")
    refused(env, tmp_path, 66, "does not exist", COMFY_INSTANCE_DIRECTORY=elsewhere)


def test_a_foreign_claim_renewed_in_the_future_is_taken_over_after_one_lease(tmp_path):
    registry = Registry(Layout(str(tmp_path)))
    record = {"generation": 1, "token": "t", "host": "elsewhere", "boot_id": "another-boot", "container_id": None,
              "pid": 4242, "since": utc_now(), "heartbeat": 3, "lease_seconds": 0.5, "port": 8188, "listen": "0.0.0.0",
              "renewed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))}
    with registry.transaction() as document:
        document["instances"]["b"] = {"created_at": utc_now(), "claim_generation": 1}
        document["claims"]["b"] = record
    claim = claims.acquire(registry, "b", port=8188, listen="0.0.0.0", lease=0.5)
    assert claim.generation == 2 and claim.record["boot_id"] == boot_id()
    claim.release()


def test_two_ids_on_one_port_at_one_instant_cannot_both_claim(tmp_path):
    registry = Registry(Layout(str(tmp_path)))
    first = claims.acquire(registry, "a", port=8555, listen="127.0.0.1", lease=5)
    try:
        with pytest.raises(claims.PortTaken) as caught:
            claims.acquire(registry, "b", port=8555, listen="127.0.0.1", lease=5)
        assert caught.value.exit_code == 75 and "claimed by instance 'a'" in caught.value.lines()[0]
        assert "b" not in registry.load()["claims"]
    finally:
        first.release()
    claims.acquire(registry, "b", port=8555, listen="127.0.0.1", lease=5).release()


def test_a_lone_surrogate_in_the_registry_does_not_stop_every_start(tmp_path):
    registry = Registry(Layout(str(tmp_path)))
    with registry.transaction() as document:
        document["instances"]["a"] = {"created_at": utc_now(), "claim_generation": 0}
    text = open(registry.path, encoding="utf-8").read().replace('"claim_generation": 0', '"claim_generation": 0, "description": "\\ud800"')
    open(registry.path, "w", encoding="utf-8").write(text)
    with registry.transaction() as document:
        document["instances"]["b"] = {"created_at": utc_now(), "claim_generation": 0}
    assert registry.load()["instances"]["a"]["description"] == "\ud800"


def test_a_non_utf8_path_never_crashes_the_text_dry_run(env, tmp_path):
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/data-\xff")
    result = subprocess.run(COMFY_INIT + ["--dry-run"], env=dict(env, COMFY_DATA_DIRECTORY=odd,
                                                                 CLI_ARGS="--preview-method auto"),
                            capture_output=True, timeout=60)
    assert result.returncode == 0 and b"Traceback" not in result.stderr
    assert json.loads(subprocess.run(COMFY_INIT + ["--dry-run", "--json"], env=dict(env, COMFY_DATA_DIRECTORY=odd),
                                     capture_output=True, timeout=60).stdout)["status"] == "ok"


def test_the_loser_of_a_simultaneous_start_is_told_who_holds_the_instance(tmp_path):
    import threading

    from comfy_init.store import locks

    registry = Registry(Layout(str(tmp_path)))
    os.makedirs(registry.layout.locks)
    winner_lock = locks.try_lock(registry.layout.lock_path("b"))  # the winner has the lock ...
    record = {"generation": 1, "token": "w", "host": "winner-host", "boot_id": boot_id(), "container_id": None,
              "pid": 4242, "since": utc_now(), "renewed_at": utc_now(), "heartbeat": 0, "lease_seconds": 30,
              "port": 8188, "listen": "0.0.0.0"}

    def write_record_soon():  # ... and writes its record a moment later
        time.sleep(0.3)
        with registry.transaction() as document:
            document["instances"]["b"] = {"created_at": utc_now(), "claim_generation": 1}
            document["claims"]["b"] = record

    writer = threading.Thread(target=write_record_soon)
    writer.start()
    try:
        with pytest.raises(claims.ClaimHeld) as caught:
            claims.acquire(registry, "b", port=8188, listen="0.0.0.0", lease=30)
        assert "held by winner-host, pid 4242" in caught.value.lines()[0]
        assert "registry reset" not in caught.value.lines()[0]
    finally:
        writer.join()
        winner_lock.release()


def test_a_newer_bak_is_named_as_the_newer_file(tmp_path):
    from comfy_init.store.registry import RegistryNewer

    registry = Registry(Layout(str(tmp_path)))
    os.makedirs(registry.meta_dir)
    open(registry.path, "w").write("{broken")
    newer = {"schema_version": 99, "revision": 5, "updated_at": "", "instances": {}, "claims": {}}
    open(registry.backup_path, "w").write(json.dumps(newer))
    with pytest.raises(Exception) as damaged:
        registry.load()
    assert "instance-registry.json.bak is from a newer comfy-init" in damaged.value.lines()[0]
    with pytest.raises(RegistryNewer) as caught:
        registry.recover("backup")
    assert caught.value.lines()[0].startswith(f"{registry.backup_path}: written by a newer comfy-init")
    assert open(registry.path).read() == "{broken"


def test_two_instances_cannot_share_one_directory_outside_instances(env, tmp_path):
    elsewhere = str(tmp_path / "elsewhere")
    first = run(dict(env, COMFY_INSTANCE_ID="b", COMFY_INSTANCE_DIRECTORY=elsewhere, COMFY_PYTHON="/bin/true"))
    assert first.returncode == 0, first.stderr
    assert open(os.path.join(elsewhere, ".comfy-init-instance")).read() == "b\n"
    second = refused(env, tmp_path, 65, "belongs to instance 'b'", COMFY_INSTANCE_ID="c",
                     COMFY_INSTANCE_DIRECTORY=elsewhere, COMFY_PYTHON="/bin/true")
    assert "not to 'c'" in second.stderr


@pytest.mark.parametrize("where, target", [
    ("shared/models", "../meta"),
    ("shared/models/checkpoints", "../../instances/a/output"),
    ("shared/input", "../instances/b"),
    ("meta/locks", "../instances/b/user"),
    ("meta/locks", "../shared/input"),
    ("meta", "shared"),
])
def test_shared_and_meta_may_not_be_linked_into_each_other_or_an_instance(env, tmp_path, where, target):
    path = os.path.join(env["COMFY_DATA_DIRECTORY"], where)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.isdir(path) and not os.path.islink(path):
        os.rmdir(path)
    os.makedirs(os.path.join(os.path.dirname(path), target), exist_ok=True)
    os.symlink(target, path)
    refused(env, tmp_path, 65, f"{path}: resolves to", COMFY_PYTHON="/bin/true")


def test_relative_cli_args_paths_are_judged_from_the_checkout(env, tmp_path):
    checkout = tmp_path / "data" / "app"  # a checkout beside the instances: ../instances/a from it
    subprocess.run(["cp", "-r", str(STANDIN_DIR), str(checkout)], check=True)
    refused(env, tmp_path, 78, "inside the directory of instance 'a'", COMFY_APP_DIRECTORY=str(checkout),
            CLI_ARGS="--temp-directory ../instances/a")


def test_a_reset_needs_no_bak_and_the_variable_recovers_what_the_cli_recovers(env, tmp_path):
    meta = os.path.join(env["COMFY_DATA_DIRECTORY"], "meta")
    os.makedirs(meta)
    os.mkfifo(os.path.join(meta, "instance-registry.json.bak"))
    os.mkdir(os.path.join(meta, "instance-registry.json"))  # not a file at all
    result = run(dict(env, COMFY_REGISTRY_RECOVER="reset", COMFY_PYTHON="/bin/true"))
    assert result.returncode == 0, result.stderr
    assert "reset" in result.stderr and any(name.startswith("instance-registry.json.corrupt-")
                                            for name in os.listdir(meta))


def test_instance_directory_in_the_default_shared_tree_is_refused_when_shared_is_moved(env, tmp_path):
    """Found by the property test: with COMFY_SHARED_DIRECTORY elsewhere, DATA/shared is still what
    every container with the default shares; an instance there would chown and write into models."""
    data = env["COMFY_DATA_DIRECTORY"]
    result = run(dict(env, COMFY_INSTANCE_DIRECTORY=f"{data}/shared/models",
                      COMFY_SHARED_DIRECTORY=str(tmp_path / "outside")), "--dry-run")
    assert result.returncode == 78 and "the default shared directory" in result.stderr
