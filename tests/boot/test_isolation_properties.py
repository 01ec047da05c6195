"""Property test of the isolation promises: trees with every kind of entry at every level of the
layout, and adversarial path settings, as root and as an unprivileged user.

For each generated case `comfy-init run` (real, with a ComfyUI that exits at once) must:
  - exit with a documented code, without a traceback;
  - create or change nothing outside the data root;
  - change nothing inside it when it refuses (exit != 0);
  - never chown or change shared/;
  - when it succeeds, leave the instance's own folders resolving into its own directory only.
COMFY_INIT_PROPERTY_EXAMPLES sets how many cases run (CI: the default below).
"""

import os
import shutil
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.ports import free_port
from tests.support.processes import COMFY_INIT
from tests.support.standin import STANDIN_DIR
from tests.support.treesnap import snapshot

DOCUMENTED = {0, 64, 65, 66, 73, 74, 75, 77, 78}
EXAMPLES = int(os.environ.get("COMFY_INIT_PROPERTY_EXAMPLES", "120"))

LEVELS = ["data", "data/shared", "data/shared/models", "data/shared/models/checkpoints", "data/shared/input",
          "data/instances", "data/instances/a", "data/instances/b", "data/instances/b/temp",
          "data/instances/b/output", "data/instances/b/user", "data/instances/b/models", "data/instances/b/input",
          "data/meta", "data/meta/locks", "data/meta/instance-registry.json", "data/meta/locks/b.lock",
          "data/meta/instance-registry.json.lock"]
KINDS = ["dir", "file", "fifo", "loop", "dangling-out", "link-out", "link-other-instance", "link-shared"]
SETTINGS = {
    "COMFY_INSTANCE_DIRECTORY": [None, "{D}/instances/a", "{D}/instances/a/output/b", "{D}/shared", "{D}/shared/models",
                                 "{D}/meta", "{D}", "{T}/outside/inst", "{T}/nowhere/x/b"],
    "COMFY_SHARED_DIRECTORY": [None, "{D}/instances/a/temp", "{D}/instances", "{D}/meta", "{T}/outside/shared"],
    "CLI_ARGS": [None, "--output-directory {D}/instances/a/output", "--temp {D}/shared", "--por 1",
                 "--database-url sqlite:///{D}/instances/a/user/comfyui.db", "--preview-method auto"],
    "PUID": [None, "4242"],
}


LINK_TARGETS = {"link-other-instance": ("data", "instances", "a", "temp"), "link-shared": ("data", "shared", "input")}


def make(path, kind, top):
    target = os.path.join(top, *LINK_TARGETS[kind]) if kind in LINK_TARGETS else None
    if target is not None and (target + "/").startswith(path + "/"):
        return  # a link to something inside itself cannot be made
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    if kind == "dir":
        os.mkdir(path)
    elif kind == "file":
        with open(path, "w") as file:
            file.write("user data")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        os.symlink(os.path.basename(path), path)
    elif kind == "dangling-out":
        os.symlink(os.path.join(top, "outside", "made-by-comfy-init"), path)
    elif kind == "link-out":
        os.symlink(os.path.join(top, "outside", "dir"), path)
    else:  # a link to another instance's temp, or into shared/
        os.makedirs(target, exist_ok=True)
        os.symlink(target, path)


def outside_state(top):
    """Everything outside the data root, but the places a setting may ask for on purpose
    (outside/inst, outside/shared: an instance or shared directory kept elsewhere) and the data
    root's own target when the data root itself is a link (a data directory on another disk)."""
    own = {"inst", "shared"}
    data = os.path.join(top, "data")
    if os.path.islink(data) and os.path.realpath(data) == os.path.realpath(os.path.join(top, "outside", "dir")):
        own.add("dir")
    kept = {path: entry for path, entry in snapshot(os.path.join(top, "outside")).items()
            if path.split(os.sep)[0] not in own and path != "."}
    return kept, sorted(os.listdir(top))


def own_folders_resolve_inside(top, instance_dir, shared_dir):
    root = os.path.realpath(instance_dir)
    other = os.path.realpath(os.path.join(top, "data", "instances", "a"))
    for name in ("custom_nodes", "user", "temp", "output"):
        real = os.path.realpath(os.path.join(instance_dir, name))
        if real == other or real.startswith(other + "/"):
            return False
        if real.startswith(os.path.realpath(shared_dir) + "/"):
            return False
    return os.path.isdir(root)


def as_nobody():
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return []
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(entries=st.lists(st.tuples(st.sampled_from(LEVELS), st.sampled_from(KINDS)), max_size=3),
       chosen=st.fixed_dictionaries({name: st.sampled_from(values) for name, values in SETTINGS.items()}),
       nobody=st.booleans())
def test_isolation_promises_hold_on_any_tree(entries, chosen, nobody):
    top = tempfile.mkdtemp(prefix="comfy-init-prop-")
    try:
        os.chmod(top, 0o755)
        os.makedirs(os.path.join(top, "outside", "dir"))
        with open(os.path.join(top, "outside", "dir", "keep"), "w") as file:
            file.write("not comfy-init's")
        os.makedirs(os.path.join(top, "data", "shared", "models", "loras"))
        with open(os.path.join(top, "data", "shared", "models", "loras", "m.safetensors"), "w") as file:
            file.write("model")
        for level, kind in entries:
            try:
                make(os.path.join(top, level), kind, top)
            except OSError:
                pass  # an earlier entry stands in the way: this one cannot exist in such a tree
        prefix = as_nobody() if nobody else []
        if prefix:
            subprocess.run(["chmod", "-R", "a+rwX", os.path.join(top, "data")], check=False)
        env = {"PATH": os.environ["PATH"], "COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "b",
               "COMFY_DATA_DIRECTORY": os.path.join(top, "data"), "COMFY_APP_DIRECTORY": str(STANDIN_DIR),
               "COMFY_DEVICE": "cpu", "COMFY_PORT": str(free_port()), "COMFY_LISTEN": "127.0.0.1",
               "COMFY_PYTHON": "/bin/true", "COMFY_CLAIM_LEASE": "1", "HOME": top}
        for name, value in chosen.items():
            if value is not None:
                env[name] = value.format(D=os.path.join(top, "data"), T=top)
        outside_before = outside_state(top)
        shared_before = snapshot(os.path.join(top, "data", "shared"))
        data_before = snapshot(os.path.join(top, "data"))
        for args in (["--dry-run"], []):
            result = subprocess.run(prefix + COMFY_INIT + args, env=env, capture_output=True, text=True,
                                    timeout=60, stdin=subprocess.DEVNULL)
            case = f"{entries} {chosen} nobody={bool(prefix)} {args}: exit {result.returncode}\n{result.stderr}"
            assert result.returncode in DOCUMENTED, case
            assert "Traceback" not in result.stderr, case
            assert outside_state(top) == outside_before, case
            if result.returncode != 0 or args:
                if result.returncode != 0:
                    assert snapshot(os.path.join(top, "data")) == data_before, case
                continue
        after_shared = snapshot(os.path.join(top, "data", "shared"))
        for path, before in shared_before.items():
            assert after_shared.get(path, before)[2:4] == before[2:4], f"shared/{path} was chowned: {case}"
        if result.returncode == 0:
            instance_dir = env.get("COMFY_INSTANCE_DIRECTORY", os.path.join(top, "data", "instances", "b"))
            shared_dir = env.get("COMFY_SHARED_DIRECTORY", os.path.join(top, "data", "shared"))
            assert own_folders_resolve_inside(top, instance_dir, shared_dir), case
    finally:
        subprocess.run(["rm", "-rf", top], check=False)


def test_a_read_only_data_directory_is_refused_without_a_change(tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private read-only mount")
    data = tmp_path / "data"
    data.mkdir()
    script = (f'mount -t tmpfs -o ro tmpfs "{data}" && exec "$@"')
    env = {"PATH": os.environ["PATH"], "COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "b",
           "COMFY_DATA_DIRECTORY": str(data), "COMFY_APP_DIRECTORY": str(STANDIN_DIR), "COMFY_DEVICE": "cpu",
           "COMFY_PORT": str(free_port()), "COMFY_PYTHON": "/bin/true"}
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *COMFY_INIT],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 77, result.stderr
    assert "cannot be written" in result.stderr and "Traceback" not in result.stderr


def test_a_full_filesystem_is_a_documented_error_and_a_later_start_works(tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private tmpfs")
    data = tmp_path / "data"
    data.mkdir()
    # A 64 KiB tmpfs filled up, then comfy-init on it;
    # then the filler is removed and the same start must succeed.
    script = (f'mount -t tmpfs -o size=64k,nr_inodes=400 tmpfs "{data}" && '
              f'(dd if=/dev/zero of="{data}/filler" bs=4k 2>/dev/null; true) && '
              '"$@"; first=$?; echo "first=$first"; rm -f "' + str(data) + '/filler"; "$@"; echo "second=$?"')
    env = {"PATH": os.environ["PATH"], "COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "b",
           "COMFY_DATA_DIRECTORY": str(data), "COMFY_APP_DIRECTORY": str(STANDIN_DIR), "COMFY_DEVICE": "cpu",
           "COMFY_PORT": str(free_port()), "COMFY_PYTHON": "/bin/true"}
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *COMFY_INIT],
                            env=env, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    first = int(result.stdout.split("first=")[1].split()[0])
    assert first in (73, 74), result.stdout + result.stderr
    assert "second=0" in result.stdout, result.stdout + result.stderr
