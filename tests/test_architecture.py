"""The rules docs/architecture.md states, checked on the source: who may import what, no import
cycles, no click below the CLI, nothing slow on `comfy-init run`'s start path, short functions."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import instance_env
from tests.support.ports import free_port
from tests.support.standin import STANDIN_DIR

PACKAGE = Path(__file__).resolve().parents[1] / "comfy_init"
LEAVES = {"comfy_init", "comfy_init.exitcodes", "comfy_init.problems", "comfy_init.errors", "comfy_init.layout",
          "comfy_init.log", "comfy_init.results"}
# package -> the comfy_init packages (besides the leaf modules) its modules may import.
ALLOWED = {
    "comfy_init.store": {"comfy_init.store"},
    "comfy_init.tree": {"comfy_init.tree", "comfy_init.store"},
    "comfy_init.comfyui": {"comfy_init.comfyui"},
    "comfy_init.pid1": {"comfy_init.pid1"},
    "comfy_init.venv": {"comfy_init.venv", "comfy_init.store"},
    "comfy_init.boot": {"comfy_init.boot", "comfy_init.store", "comfy_init.tree", "comfy_init.comfyui",
                        "comfy_init.pid1", "comfy_init.venv"},
    "comfy_init.ops": {"comfy_init.ops", "comfy_init.store", "comfy_init.tree", "comfy_init.comfyui",
                       "comfy_init.boot", "comfy_init.venv"},
    "comfy_init.cli": {"comfy_init.cli", "comfy_init.ops", "comfy_init.boot", "comfy_init.pid1"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module_name(path).split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names
                      if (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/")).exists()
                      or (PACKAGE.parent / (f"{base}.{alias.name}".replace(".", "/") + ".py")).exists()]
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def package_of(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else name


def test_every_package_imports_only_what_it_may():
    wrong = []
    for name, path in MODULES.items():
        if name in LEAVES or name == "comfy_init.__main__":
            continue
        allowed = ALLOWED[package_of(name)]
        for imported, line in imports_of(path):
            if not imported.startswith("comfy_init"):
                continue
            target = package_of(imported) if imported in MODULES or imported.rsplit(".", 1)[0] in MODULES else imported
            if imported in LEAVES or target in LEAVES or target in allowed:
                continue
            wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name} imports {imported}")
    assert wrong == []


def test_leaf_modules_import_only_leaf_modules():
    wrong = [f"{name} imports {imported}" for name in LEAVES for imported, _ in imports_of(MODULES[name])
             if imported.startswith("comfy_init") and imported not in LEAVES]
    assert wrong == []


def test_no_import_cycles():
    graph = {name: {imp for imp, _ in imports_of(path) if imp in MODULES and imp != name}
             for name, path in MODULES.items()}
    # A package's __init__ is imported with each of its modules; these are all empty or parse-only.
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_nothing_below_the_cli_imports_click():
    wrong = [f"{name}: {imported}" for name, path in MODULES.items() if not name.startswith("comfy_init.cli")
             for imported, _ in imports_of(path) if imported.split(".")[0] == "click"]
    assert wrong == []


def test_the_longest_function_is_under_60_lines():
    lengths = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lengths.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
    assert max(lengths)[0] < 60, max(lengths)


# -- the start path ------------------------------------------------------------------------------

MODULES_AT_EXIT = """
import atexit, json, sys
def dump():
    with open(sys.argv[1], "w") as out:
        json.dump(sorted(sys.modules), out)
atexit.register(dump)
from comfy_init.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


def modules_loaded_by(tmp_path, env, *args):
    out = tmp_path / "modules.json"
    result = subprocess.run([sys.executable, "-c", MODULES_AT_EXIT, str(out), *args], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(json.loads(out.read_text())), result


@pytest.fixture
def start_env(tmp_path):
    # ComfyUI that exits at once: the whole real start runs (tree, claim, spawn, release).
    return instance_env(instance_id="guard-1", data=tmp_path / "data", app=STANDIN_DIR, port=free_port(),
                        COMFY_PYTHON="/bin/true")


def test_the_dry_run_imports_neither_click_psutil_nor_jsonschema(tmp_path, start_env):
    loaded, _ = modules_loaded_by(tmp_path, start_env, "run", "--dry-run")
    assert not {"click", "psutil", "jsonschema", "zstandard", "blake3"} & loaded


def test_the_real_start_imports_neither_click_nor_psutil_nor_jsonschema(tmp_path, start_env):
    loaded, result = modules_loaded_by(tmp_path, start_env, "run")
    assert "started ComfyUI" in result.stderr and "released instance" in result.stderr
    assert not {"click", "psutil", "jsonschema", "zstandard", "blake3"} & loaded


def test_a_damaged_registry_is_explained_with_jsonschema(tmp_path, start_env):
    meta = tmp_path / "data" / "meta"
    meta.mkdir(parents=True)
    (meta / "instance-registry.json").write_text(json.dumps(
        {"schema_version": 1, "revision": "x", "updated_at": "", "instances": {}, "claims": {}}))
    result = subprocess.run([sys.executable, "-m", "comfy_init", "run"], env=start_env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 65
    assert "$.revision: 'x' is not of type 'integer'" in result.stderr
    assert "set COMFY_REGISTRY_RECOVER=reset" in result.stderr


def test_no_module_under_the_package_is_left_over_from_the_old_layout():
    assert not [p for p in ("config.py", "tree.py", "claims.py", "registry.py", "atomicfile.py", "run.py",
                            "launch.py", "signals.py", "supervisor.py", "privileges.py", "health.py", "comfyui.py")
                if (PACKAGE / p).exists()]
    assert os.path.isfile(PACKAGE / "store" / "registry.schema.json")


def test_every_folder_of_tests_is_collected(pytestconfig):
    """pytest skips folders matching norecursedirs (its default list has `venv`, which hid
    tests/venv once): every folder under tests/ holding test files must be walked."""
    from fnmatch import fnmatch

    skipped = pytestconfig.getini("norecursedirs")
    tests = Path(__file__).resolve().parent
    folders = {path.parent for path in tests.rglob("test_*.py")}
    hidden = [str(folder.relative_to(tests)) for folder in folders
              for part in folder.relative_to(tests).parts if any(fnmatch(part, pattern) for pattern in skipped)]
    assert hidden == [], f"norecursedirs {skipped} hides {hidden}"
