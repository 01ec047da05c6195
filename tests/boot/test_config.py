import pytest

from comfy_init.boot.config import load_config
from comfy_init.errors import ConfigError


def test_defaults_in_compatibility_mode():
    config = load_config({})
    assert config.multi_instance is False
    assert config.data_dir == "/data"
    assert config.base_dir == "/data/comfy"
    assert config.instance_dir is None
    assert config.instance_id == "comfy"
    assert (config.port, config.listen, config.device) == (8188, "0.0.0.0", "auto")
    assert config.stop_timeout == 8.0
    assert config.cli_args == ()


def test_multi_instance_paths_follow_the_data_directory():
    config = load_config({"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "core-1",
                          "COMFY_DATA_DIRECTORY": "/srv/comfy/"})
    assert config.shared_dir == "/srv/comfy/shared"
    assert config.instance_dir == "/srv/comfy/instances/core-1"
    assert config.base_dir == config.instance_dir
    assert config.meta_dir == "/srv/comfy/meta"


def test_config_is_immutable():
    config = load_config({})
    with pytest.raises(AttributeError):
        config.port = 1


@pytest.mark.parametrize("value", ["core-1", "a", "x" * 63, "0gpu", "cpu-2"])
def test_good_instance_ids(value):
    assert load_config({"COMFY_MULTI_INSTANCE": "1", "COMFY_INSTANCE_ID": value}).instance_id == value


@pytest.mark.parametrize("value", ["Core", "-a", "a-", "a_b", "x" * 64, "a.b", "über"])
def test_bad_instance_ids(value):
    with pytest.raises(ConfigError) as caught:
        load_config({"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": value})
    (line,) = caught.value.lines()
    assert line.startswith(f"COMFY_INSTANCE_ID={value!r}: must be a DNS label")
    assert "e.g. COMFY_INSTANCE_ID=core-1" in line
    assert caught.value.exit_code == 78


def test_multi_instance_needs_an_id():
    with pytest.raises(ConfigError) as caught:
        load_config({"COMFY_MULTI_INSTANCE": "true"})
    assert "COMFY_INSTANCE_ID is not set" in caught.value.lines()[0]


def test_every_error_is_reported_at_once():
    env = {
        "COMFY_MULTI_INSTANCE": "maybe",
        "COMFY_INSTANCE_ID": "Bad_Id",
        "COMFY_DATA_DIRECTORY": "relative/path",
        "COMFY_PORT": "0",
        "COMFY_LISTEN": "0.0.0.0 ; rm",
        "COMFY_DEVICE": "gpu",
        "COMFY_CUDA_DEVICE": "x",
        "CLI_ARGS": "--unbalanced 'quote",
        "PUID": "-1",
        "PGID": "abc",
        "COMFY_STOP_TIMEOUT": "soon",
        "COMFY_REGISTRY_RECOVER": "fix",
    }
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    named = [line.split("=", 1)[0] for line in caught.value.lines()]
    assert named == ["COMFY_MULTI_INSTANCE", "COMFY_INSTANCE_ID", "COMFY_DATA_DIRECTORY", "COMFY_PORT",
                     "COMFY_LISTEN", "COMFY_DEVICE", "COMFY_CUDA_DEVICE", "CLI_ARGS", "PUID", "PGID",
                     "COMFY_STOP_TIMEOUT", "COMFY_REGISTRY_RECOVER"]
    for line in caught.value.lines():
        assert "; e.g. " in line, line


@pytest.mark.parametrize("value", ["0", "65536", "80a", "-1", "8188.0"])
def test_bad_ports(value):
    with pytest.raises(ConfigError) as caught:
        load_config({"COMFY_PORT": value})
    assert caught.value.lines() == [
        f"COMFY_PORT={value!r}: must be an integer from 1 to 65535; e.g. COMFY_PORT=8188"]


def test_long_values_are_cut_at_80_characters():
    with pytest.raises(ConfigError) as caught:
        load_config({"COMFY_PORT": "9" * 500})
    shown = caught.value.lines()[0].split(": must")[0][len("COMFY_PORT="):]
    assert len(shown) == 80 and shown.endswith("...")


def test_paths_must_be_absolute():
    with pytest.raises(ConfigError) as caught:
        load_config({"COMFY_APP_DIRECTORY": "opt/comfyui"})
    assert caught.value.lines()[0].startswith("COMFY_APP_DIRECTORY='opt/comfyui': must be an absolute path")


def test_cli_args_are_split_like_a_shell():
    config = load_config({"CLI_ARGS": "--preview-method auto --output-directory '/a b'"})
    assert config.cli_args == ("--preview-method", "auto", "--output-directory", "/a b")


def test_cuda_device_conflicts_with_cpu():
    with pytest.raises(ConfigError) as caught:
        load_config({"COMFY_DEVICE": "cpu", "COMFY_CUDA_DEVICE": "1"})
    assert "conflicts with COMFY_DEVICE='cpu'" in caught.value.lines()[0]


def test_pgid_defaults_to_puid_and_needs_it():
    assert load_config({"PUID": "1000"}).pgid == 1000
    with pytest.raises(ConfigError) as caught:
        load_config({"PGID": "1000"})
    assert "without PUID" in caught.value.lines()[0]


@pytest.mark.parametrize("word,expected", [("TRUE", True), ("yes", True), ("0", False), ("off", False), ("", False)])
def test_booleans(word, expected):
    env = {"COMFY_MULTI_INSTANCE": word, "COMFY_INSTANCE_ID": "a"}
    assert load_config(env).multi_instance is expected


@pytest.mark.parametrize("cli_args", ["--port 8189", "--listen=127.0.0.1", "--cpu --port=1"])
def test_port_and_listen_belong_to_comfy_init(cli_args):
    with pytest.raises(ConfigError) as caught:
        load_config({"CLI_ARGS": cli_args})
    (line,) = caught.value.lines()
    assert line.startswith(f"CLI_ARGS={cli_args!r}: --")
    assert "set COMFY_PORT instead" in line or "set COMFY_LISTEN instead" in line


def test_base_directory_must_be_the_instance_directory_in_multi_mode():
    env = {"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "a", "COMFY_BASE_DIRECTORY": "/elsewhere"}
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    assert caught.value.lines()[0].startswith("COMFY_BASE_DIRECTORY='/elsewhere': must be the instance directory")
    env["COMFY_BASE_DIRECTORY"] = "/data/instances/a"
    assert load_config(env).base_dir == "/data/instances/a"


def test_path_settings_with_control_characters_are_refused():
    with pytest.raises(ConfigError) as caught:
        load_config({"COMFY_MULTI_INSTANCE": "true", "COMFY_INSTANCE_ID": "b",
                     "COMFY_SHARED_DIRECTORY": "/data/a\nERROR: fake"})
    assert caught.value.lines() == [
        "COMFY_SHARED_DIRECTORY='/data/a\\nERROR: fake': must not hold control characters (a newline, a tab); "
        "e.g. COMFY_SHARED_DIRECTORY=/data/shared"]


@pytest.mark.parametrize("value, parsed", [("0", "0"), (" 3 ", "3"), ("0,1", "0,1"), ("1, 02", "1,2"),
                                           ("ALL", "all"), ("all", "all")])
def test_cuda_device_forms(value, parsed):
    from comfy_init.boot.config import cuda_devices

    config = load_config({"COMFY_CUDA_DEVICE": value})
    assert config.cuda_device == parsed
    assert cuda_devices(config.cuda_device) == (None if parsed == "all" else parsed.split(","))


@pytest.mark.parametrize("value", ["x", "-1", "1024", "0,0", "0,", "1;2", "٣"])
def test_bad_cuda_device_forms(value):
    with pytest.raises(ConfigError) as caught:
        load_config({"COMFY_CUDA_DEVICE": value})
    line, = caught.value.lines()
    assert line.startswith(f"COMFY_CUDA_DEVICE={value!r}") and "or all" in line


def test_assets_setting():
    assert load_config({}).assets == "default"
    assert load_config({"COMFY_ASSETS": "Off"}).assets == "off"
    with pytest.raises(ConfigError) as caught:
        load_config({"COMFY_ASSETS": "maybe"})
    assert caught.value.lines()[0].startswith("COMFY_ASSETS='maybe'")
