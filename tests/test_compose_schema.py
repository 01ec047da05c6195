"""The compose files: valid Compose Specification, and the rules comfy-init's services follow.

Only docker-compose 1.29 (Compose v1) can run here, so validity for Compose v2 users is checked
against the Compose Specification's JSON schema as check-jsonschema ships it (its vendor schema
`vendor.compose-spec`, installed by the `test` extra): nothing outside the repository is needed.
The rules (ports, profiles, stop grace, GPUs, one data mount) are checked on the parsed YAML.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILES = sorted([*COMPOSE_DIR.glob("*.yml"), *COMPOSE_DIR.glob("*.yaml")])
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"

DATA_MOUNT = "${COMFY_DATA_PATH:-./data}:/data"
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+]([^}]*))?\}")

# service -> (profile, port, variant). Compatibility services share 8188 and run one at a time;
# every multi-instance port is distinct, so all multi-* profiles can run together.
COMPAT_SERVICES = {
    "core": ("core", 8188, "core"),
    "complete": ("complete", 8188, "complete"),
    "cpu": ("cpu", 8188, "cpu"),
}
MULTI_SERVICES = {
    "core-1": ("multi-core", 8188, "core"),
    "core-2": ("multi-core", 8189, "core"),
    "complete-1": ("multi-complete", 8190, "complete"),
    "cpu-1": ("multi-cpu", 8191, "cpu"),
    "cpu-2": ("multi-cpu", 8192, "cpu"),
}
ALL_SERVICES = {**COMPAT_SERVICES, **MULTI_SERVICES}
# Services that are not instances: no port, no GPU, no restart; the comfy-init CLI in a one-off
# container (`docker compose run --rm comfy-init instance list`). service -> (profile, variant).
TOOL_SERVICES = {"comfy-init": ("tools", "cpu")}
# The GPU id of each GPU service comes from this variable of .env.
GPU_VARIABLES = {
    "core": "CORE_GPU",
    "complete": "COMPLETE_GPU",
    "core-1": "CORE_1_GPU",
    "core-2": "CORE_2_GPU",
    "complete-1": "COMPLETE_1_GPU",
}
# Top-level keys docker-compose 1.29 understands (plus x- extension fields).
V1_TOP_LEVEL = {"version", "services", "networks", "volumes", "secrets", "configs"}


# check-jsonschema's copy of the Compose Specification schema (its `vendor.compose-spec`).
SCHEMA_PACKAGE = "check_jsonschema"
SCHEMA_RESOURCE = ("builtin_schemas", "vendor", "compose-spec.json")


@pytest.fixture(scope="module")
def schema():
    try:
        resource = importlib.resources.files(SCHEMA_PACKAGE).joinpath(*SCHEMA_RESOURCE)
        text = resource.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as e:
        pytest.fail(f"the Compose Specification schema comes from check-jsonschema ({e}): "
                    "pip install -e '.[test]'", pytrace=False)
    document = json.loads(text)
    assert document.get("title") == "Compose Specification", f"not the compose schema: {resource}"
    return document


def load(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)  # resolves anchors and << merge keys, as Compose does


@pytest.fixture(scope="module")
def compose():
    return load(COMPOSE_DIR / "docker-compose.yml")


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def default_of(value) -> str:
    """The value Compose uses when no variable is set: ${X:-8} -> 8; plain text stays as it is."""
    text = str(value)
    match = INTERPOLATION.fullmatch(text)
    if match:
        return match.group(2) or ""
    return text


def seconds(duration: str) -> float:
    """A Compose duration (15s, 1m30s, 500ms, 2h) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def environment(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def port_pairs(service: dict) -> list[tuple[int, int]]:
    pairs = []
    for port in service.get("ports") or []:
        assert isinstance(port, str), f"write ports as \"HOST:CONTAINER\" strings: {port!r}"
        host, _, container = port.rpartition(":")
        pairs.append((int(host.rpartition(":")[2]), int(container.split("/")[0])))
    return pairs


# --- the specification ------------------------------------------------------------------------------


def test_compose_files_exist():
    assert COMPOSE_FILES, f"no compose files in {COMPOSE_DIR}"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_valid_against_compose_spec(path, schema):
    # The validator class the schema's own $schema names (draft 2020-12 in current releases).
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    errors = sorted(validator(schema).iter_errors(load(path)), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)


def test_the_schema_rejects_what_compose_rejects(schema):
    """The schema is really applied: a service with an unknown key and a bad port fails it."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    bad = {"services": {"x": {"image": "i", "restart_policy": "always", "ports": [{"target": "x"}]}}}
    assert not validator.is_valid(bad)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_only_what_compose_v1_understands(path):
    document = load(path)
    unknown = {k for k in document if not k.startswith("x-")} - V1_TOP_LEVEL
    assert not unknown, f"top-level keys docker-compose 1.29 does not know: {sorted(unknown)}"
    for name, service in document["services"].items():
        assert "develop" not in service and "include" not in document, name


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (v1) not installed")
@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_docker_compose_v1_accepts_it(path, tmp_path):
    """docker-compose 1.29 itself parses, interpolates and validates the file (no engine needed)."""
    profiles = sorted({p for s in load(path)["services"].values() for p in s.get("profiles", [])})
    command = ["docker-compose", "--project-directory", str(path.parent), "-f", str(path)]
    for profile in profiles:
        command += ["--profile", profile]
    # An empty environment file: a developer's compose/.env must not change the outcome.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    result = subprocess.run(
        [*command, "--env-file", str(env_file), "config", "-q"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr


# --- comfy-init's rules -----------------------------------------------------------------------------


def test_exactly_the_documented_services(services):
    assert set(services) == set(ALL_SERVICES) | set(TOOL_SERVICES)
    assert not set(ALL_SERVICES) & set(TOOL_SERVICES)


@pytest.mark.parametrize("name", sorted(ALL_SERVICES))
def test_profile_port_and_mode(services, name):
    profile, port, _ = ALL_SERVICES[name]
    service = services[name]
    env = environment(service)
    assert service.get("profiles") == [profile]
    # Host and container port agree, so the URL ComfyUI prints is the one to open.
    assert port_pairs(service) == [(port, port)]
    assert env.get("COMFY_PORT") == str(port)
    if name in MULTI_SERVICES:
        assert env.get("COMFY_MULTI_INSTANCE") == "true"
        assert env.get("COMFY_INSTANCE_ID") == name
        assert DNS_LABEL.match(name), "instance ids are DNS labels"
    else:
        assert env.get("COMFY_MULTI_INSTANCE") == "false"
        assert "COMFY_INSTANCE_ID" not in env


def test_profiles_that_run_together_use_distinct_ports(services):
    multi_ports = [port_pairs(services[name])[0][0] for name in MULTI_SERVICES]
    assert len(multi_ports) == len(set(multi_ports)), "multi-core, multi-complete and multi-cpu combine"


@pytest.mark.parametrize("name", sorted({**ALL_SERVICES, **TOOL_SERVICES}))
def test_one_shared_data_mount(services, name):
    assert services[name].get("volumes") == [DATA_MOUNT]


@pytest.mark.parametrize("name", sorted(ALL_SERVICES))
def test_stop_grace_outlasts_comfy_init_stop_timeout(services, name):
    service = services[name]
    stop_timeout = float(default_of(environment(service).get("COMFY_STOP_TIMEOUT") or "8"))
    grace = seconds(default_of(service.get("stop_grace_period", "10s")))
    assert grace > stop_timeout + 2, (
        f"{name}: stop_grace_period {grace:g} s must leave comfy-init time after its "
        f"COMFY_STOP_TIMEOUT of {stop_timeout:g} s to release the instance")
    assert service.get("stop_signal", "SIGTERM") == "SIGTERM"


@pytest.mark.parametrize("name", sorted(ALL_SERVICES))
def test_comfy_init_is_pid_1(services, name):
    assert "init" not in services[name], "no `init:` - comfy-init is the container's PID 1"
    assert "entrypoint" not in services[name], "the image's ENTRYPOINT is comfy-init run"


@pytest.mark.parametrize("name", sorted(ALL_SERVICES))
def test_gpu_reservations(services, name):
    devices = (services[name].get("deploy") or {}).get("resources", {}).get("reservations", {}).get("devices")
    if name not in GPU_VARIABLES:
        assert not devices, f"{name} is a CPU service and must not request GPUs"
        return
    assert devices and len(devices) == 1, f"{name} requests one GPU device entry"
    device = devices[0]
    assert device.get("driver") == "nvidia"
    assert device.get("capabilities") == ["gpu"]
    assert "count" not in device, "device_ids and count exclude each other"
    ids = device.get("device_ids")
    assert isinstance(ids, list) and len(ids) == 1
    match = INTERPOLATION.fullmatch(ids[0])
    assert match and match.group(1) == GPU_VARIABLES[name], f"{name}: device id from {GPU_VARIABLES[name]}"


@pytest.mark.parametrize("name", sorted(ALL_SERVICES))
def test_build_and_overridable_image(services, name):
    _, _, variant = ALL_SERVICES[name]
    service = services[name]
    build = dict(service["build"])
    args = build.pop("args", None)
    assert build == {"context": "..", "dockerfile": f"docker/Dockerfile.{variant}"}
    assert (ROOT / service["build"]["dockerfile"]).is_file()
    variable = f"COMFY_{variant.upper()}_IMAGE"
    assert service["image"] == f"${{{variable}:-comfy-init/{variant}:latest}}"
    if variant == "complete":
        # Dockerfile.complete builds FROM the core image: the one the core services run.
        assert args == {"CORE_IMAGE": "${COMFY_CORE_IMAGE:-comfy-init/core:latest}"}
        assert "ARG CORE_IMAGE=comfy-init/core:latest" in (ROOT / build["dockerfile"]).read_text()
    else:
        assert args is None, f"{name}: the defaults build the production image, no build args"


@pytest.mark.parametrize("name", sorted(TOOL_SERVICES))
def test_tools_service_runs_the_cli_on_the_data_directory(services, name):
    """`docker compose run --rm comfy-init instance list`: the CLI, the instances' data, nothing else."""
    profile, variant = TOOL_SERVICES[name]
    service = services[name]
    assert service.get("profiles") == [profile]
    assert service.get("entrypoint") == ["comfy-init"], "the CLI, not the image's `comfy-init run`"
    assert "command" not in service, "the arguments come from `run --rm comfy-init ARGS`"
    assert service.get("volumes") == [DATA_MOUNT]
    assert service["image"] == f"${{COMFY_{variant.upper()}_IMAGE:-comfy-init/{variant}:latest}}"
    assert service.get("build") == {"context": "..", "dockerfile": f"docker/Dockerfile.{variant}"}
    # Not an instance: it publishes nothing, reserves no GPU, is never restarted, claims nothing.
    assert not service.get("ports"), f"{name} publishes no port"
    assert "deploy" not in service, f"{name} reserves no GPU"
    assert service.get("restart", "no") == "no"
    assert "COMFY_INSTANCE_ID" not in environment(service)
    assert "init" not in service
    assert service.get("healthcheck") == {"disable": True}, "the image's check asks a ComfyUI it does not run"
    # Health probes of 127.0.0.1:<port> and create's port check must see the host's ports.
    assert service.get("network_mode") == "host"


def test_the_tools_profile_is_its_own(services):
    """A plain `up` of an instance profile never starts the tools container, and no instance is a tool."""
    tool_profiles = {p for name in TOOL_SERVICES for p in services[name]["profiles"]}
    instance_profiles = {p for name in ALL_SERVICES for p in services[name]["profiles"]}
    assert not tool_profiles & instance_profiles


def strings(node):
    """Every string value of a parsed document (comments are gone, anchors resolved)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def interpolations(document):
    """(variable, default) for every ${...} in the document's values."""
    return [(m.group(1), m.group(2) or "") for text in strings(document) for m in INTERPOLATION.finditer(text)]


def test_env_example_names_every_variable(compose):
    used = {name for name, _ in interpolations(compose)}
    example = {
        line.split("=", 1)[0].strip()
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert used <= example, f"missing from .env.example: {sorted(used - example)}"
    assert example <= used, f"in .env.example but unused: {sorted(example - used)}"


def test_env_example_defaults_match_the_compose_file(compose):
    """The example's values are the compose file's own defaults: copying it changes nothing."""
    defaults = {}
    for name, default in interpolations(compose):
        defaults.setdefault(name, set()).add(default)
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = (part.strip() for part in line.split("=", 1))
            assert defaults.get(key) == {value}, f"{key}={value} but the compose default is {defaults.get(key)}"


# --- the file `comfy-init compose` writes -----------------------------------------------------------
# Used beside the shipped file (`-f compose/docker-compose.yml -f <data>/meta/compose.instances.yml`):
# one service per configured instance, profile `instances`, the shipped services' rules.

GENERATED = {  # instance id -> (variant, GPU ids given to `instance create --gpu`)
    "core-3": ("core", ["1"]),
    "core-4": ("core", []),
    "complete-3": ("complete", ["0", "2"]),
    "cpu-3": ("cpu", []),
    "cpu-4": ("cpu", []),
}
GENERATED_PROFILE = "instances"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """(data directory, the generated file's path, {id: port}) after `instance create` of every
    GENERATED instance on its own free port and `comfy-init compose`."""
    from click.testing import CliRunner

    from comfy_init.cli.main import cli
    from tests.support.ports import free_port

    data = tmp_path_factory.mktemp("compose-data")
    runner = CliRunner()
    ports = {}
    for instance_id, (variant, gpus) in GENERATED.items():
        port = free_port()
        for _ in range(20):  # distinct ports, whatever the kernel hands out
            if port not in ports.values():
                break
            port = free_port()
        args = ["instance", "create", instance_id, "--variant", variant, "--port", str(port), "--data", str(data)]
        if gpus:
            args += ["--gpu", ",".join(gpus)]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        ports[instance_id] = port
    result = runner.invoke(cli, ["compose", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.output)
    assert sorted(envelope["data"]["services"]) == sorted(GENERATED)
    path = Path(envelope["data"]["path"])
    assert path == data / "meta" / "compose.instances.yml"
    return data, path, ports


def test_generated_file_is_valid_compose_spec(generated, schema):
    _, path, _ = generated
    validator = jsonschema.validators.validator_for(schema)(schema)
    document = load(path)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)
    unknown = {k for k in document if not k.startswith("x-")} - V1_TOP_LEVEL
    assert not unknown, f"top-level keys docker-compose 1.29 does not know: {sorted(unknown)}"


def test_generated_services_follow_the_instance_rules(generated):
    data, path, ports = generated
    services = load(path)["services"]
    assert set(services) == set(GENERATED)
    registered = json.loads((data / "meta" / "instance-registry.json").read_text(encoding="utf-8"))["instances"]
    for name, (variant, gpus) in GENERATED.items():
        service = services[name]
        env = environment(service)
        port = ports[name]
        assert registered[name]["port"] == port
        assert service["profiles"] == [GENERATED_PROFILE], name
        assert port_pairs(service) == [(port, port)], name
        assert env["COMFY_MULTI_INSTANCE"] == "true"
        assert env["COMFY_INSTANCE_ID"] == name
        assert env["COMFY_PORT"] == str(port)
        # Written as strings, never as YAML numbers or booleans.
        assert all(isinstance(v, str) for v in service["environment"].values()), service["environment"]
        assert service["volumes"] == [DATA_MOUNT]
        assert service["image"] == f"${{COMFY_{variant.upper()}_IMAGE:-comfy-init/{variant}:latest}}"
        assert "init" not in service and "entrypoint" not in service, "comfy-init run is PID 1"
        grace = seconds(default_of(service.get("stop_grace_period", "10s")))
        assert grace > float(default_of(env.get("COMFY_STOP_TIMEOUT") or "8")) + 2
        assert service.get("stop_signal", "SIGTERM") == "SIGTERM"
        devices = (service.get("deploy") or {}).get("resources", {}).get("reservations", {}).get("devices")
        if gpus:
            assert devices == [{"driver": "nvidia", "device_ids": gpus, "capabilities": ["gpu"]}], name
            assert all(isinstance(i, str) for i in devices[0]["device_ids"])
        else:
            assert not devices, f"{name} has no GPU and must not request one"
        if variant == "cpu":
            assert env.get("COMFY_DEVICE") == "cpu"


def test_generated_profile_is_none_of_the_shipped_ones(services):
    """A plain `up --profile multi-cpu` (or any shipped profile) never starts a generated instance."""
    shipped = {p for service in services.values() for p in service.get("profiles", [])}
    assert GENERATED_PROFILE not in shipped


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (v1) not installed")
def test_docker_compose_v1_accepts_it_beside_the_shipped_file(generated, compose, tmp_path):
    """docker-compose 1.29 merges the two files as the generated header tells users to run them."""
    _, path, ports = generated
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    # Neither a developer's shell nor the docker fixtures' variables (COMFY_*_IMAGE) may leak in.
    read = {name for name, _ in interpolations(compose) + interpolations(load(path))}
    env = {k: v for k, v in os.environ.items() if k not in read}
    result = subprocess.run(
        ["docker-compose", "--project-directory", str(COMPOSE_DIR), "-f", str(COMPOSE_DIR / "docker-compose.yml"),
         "-f", str(path), "--env-file", str(env_file), "--profile", GENERATED_PROFILE, "config"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    merged = yaml.safe_load(result.stdout)["services"]
    assert set(GENERATED) | set(ALL_SERVICES) | set(TOOL_SERVICES) <= set(merged)
    for name, (variant, gpus) in GENERATED.items():
        service = merged[name]
        assert service["profiles"] == [GENERATED_PROFILE]
        assert [(p["published"], p["target"]) for p in service["ports"]] == [(ports[name], ports[name])], name
        assert service["environment"]["COMFY_INSTANCE_ID"] == name
        assert service["image"] == f"comfy-init/{variant}:latest"  # the defaults: the env file is empty
        devices = (service.get("deploy") or {}).get("resources", {}).get("reservations", {}).get("devices")
        assert (devices[0]["device_ids"] if devices else []) == gpus, name
        # The shipped file's mount, relative paths resolved against compose/ as for every service.
        assert service["volumes"] == merged["cpu-1"]["volumes"] == [f"{COMPOSE_DIR / 'data'}:/data:rw"]
    # The shipped services are left as they are.
    assert merged["cpu-1"]["profiles"] == ["multi-cpu"]
    assert [p["published"] for p in merged["cpu-1"]["ports"]] == [8191]


# Instance ids are DNS labels, and some DNS labels are YAML 1.1 booleans, nulls or numbers.
YAML_LOOKALIKE_IDS = ["no", "on", "null", "123", "1e3"]


def test_generated_service_names_stay_strings(tmp_path):
    from click.testing import CliRunner

    from comfy_init.cli.main import cli
    from tests.support.ports import free_port

    runner = CliRunner()
    for instance_id in YAML_LOOKALIKE_IDS:
        result = runner.invoke(cli, ["instance", "create", instance_id, "--variant", "cpu",
                                     "--port", str(free_port()), "--data", str(tmp_path)])
        assert result.exit_code == 0, result.output
    services = load(tmp_path / "meta" / "compose.instances.yml")["services"]
    assert sorted(services, key=str) == sorted(YAML_LOOKALIKE_IDS)
    assert all(environment(services[i])["COMFY_INSTANCE_ID"] == i for i in YAML_LOOKALIKE_IDS)


def test_the_names_instance_create_refuses_are_the_shipped_services(services):
    from comfy_init.store.conflicts import SHIPPED_SERVICES

    assert set(SHIPPED_SERVICES) == set(services)
