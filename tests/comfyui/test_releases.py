"""The checkout probe on the stand-in as three releases, and on real cli_args.py text shapes."""

import time

import pytest

from comfy_init.comfyui.checkout import probe_checkout
from comfy_init.comfyui.releases import FLAG_FEATURES, cuda_device_takes_a_list, features_of
from tests.support.standin import make_checkout

EXPECTED = {
    "0.3.12": {"base_directory": False, "database_url": False, "models_directory": False,
               "enable_manager": False, "disable_assets": False, "cuda_device_list": False},
    "0.3.64": {"base_directory": True, "database_url": True, "models_directory": False,
               "enable_manager": False, "disable_assets": False, "cuda_device_list": False},
    "0.38": {"base_directory": True, "database_url": True, "models_directory": True,
             "enable_manager": True, "disable_assets": True, "cuda_device_list": True},
}


@pytest.mark.parametrize("release", sorted(EXPECTED))
def test_probe_reads_each_release(tmp_path, release):
    checkout = probe_checkout(str(make_checkout(tmp_path / release, release=release)))
    got = {name: getattr(checkout, name) for name in EXPECTED[release]}
    assert got == EXPECTED[release]
    assert checkout.version.startswith(release)
    assert checkout.user_directory and checkout.input_directory  # every supported release has them
    assert set(checkout.as_dict()) >= {"enable_manager", "models_directory", "cuda_device_list"}


def test_probe_is_fast_and_imports_nothing(tmp_path):
    app = make_checkout(tmp_path / "app", release="0.38")
    (app / "comfy" / "__init__.py").write_text("raise SystemExit('imported!')\n", encoding="utf-8")
    started = time.perf_counter()
    for _ in range(20):
        probe_checkout(str(app))
    assert (time.perf_counter() - started) / 20 < 0.01


def test_flags_match_whole_names_only():
    # --enable-manager-legacy-ui must not read as --enable-manager, nor --cuda-device-x as --cuda-device.
    source = ('parser.add_argument("--enable-manager-legacy-ui", action="store_true")\n'
              'parser.add_argument("--cuda-device", type = int, default=None)\n')
    found = features_of(source)
    assert found["enable_manager"] is False
    assert found["cuda_device_list"] is False
    assert set(found) == {field for field, _flag, _since in FLAG_FEATURES} | {"cuda_device_list"}


def test_cuda_device_list_is_read_from_the_declaration():
    current = 'parser.add_argument("--cuda-device", type=str, default=None, metavar="DEVICE_ID", help="0,1 or all")'
    old = 'parser.add_argument("--cuda-device", type=int, default=None, metavar="DEVICE_ID", help="id")'
    assert cuda_device_takes_a_list(current) is True
    assert cuda_device_takes_a_list(old) is False
    assert cuda_device_takes_a_list("") is False


def standin(app, *args, timeout=10):
    """The copy's argparse only: --help-like runs that stop at parsing (exit 2) or a bad port."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, str(app / "main.py"), *args, "--port", "99999"],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("release, args, refused", [
    ("0.3.12", ["--base-directory", "/tmp"], True),
    ("0.3.12", ["--database-url", "sqlite:///:memory:"], True),
    ("0.3.64", ["--cuda-device", "0,1"], True),
    ("0.3.64", ["--cuda-device", "all"], True),
    ("0.3.64", ["--enable-manager"], True),
    ("0.38", ["--cuda-device", "0,1"], False),
    ("0.38", ["--enable-manager", "--disable-assets"], False),
    ("0.38", ["--models-directory", "/no/such/dir"], True),
])
def test_each_copy_parses_as_its_release_would(tmp_path, release, args, refused):
    # What the probe reads is what the copy's own argparse does: exit 2 for a flag it lacks.
    result = standin(make_checkout(tmp_path / "app", release=release), *args)
    assert (result.returncode == 2) is refused, result.stderr
