"""Reading ComfyUI's ASSETS_STARTUP_FAILED line out of its output, and the one line it becomes."""

import pytest

from comfy_init.comfyui.startup_failure import KINDS, PARTIAL_LIMIT, StartupFailureWatch, database_of
from comfy_init.problems import KINDS as PROBLEM_KINDS

# What ComfyUI 0.38 logs (main.py stop_startup), with its logger's level tag and colour.
IN_USE = ("\x1b[1m\x1b[31m[ERROR]\x1b[0m ASSETS_STARTUP_FAILED: in_use\r\n"
          "Another ComfyUI is already using this database: '/data/instances/a/user/comfyui.db'.\r\n"
          "Close the other ComfyUI and start this one again.\r\n"
          "Or start ComfyUI without the assets system: --disable-assets\r\n").encode()
COMMAND = ["python", "main.py", "--database-url", "sqlite:////data/instances/a/user/comfyui.db",
           "--database-url=sqlite:////srv/shared.db"]


def fed(*chunks, fd=2):
    watch = StartupFailureWatch()
    for chunk in chunks:
        watch.feed(fd, chunk)
    return watch


def test_the_marker_is_found_across_chunk_boundaries_and_tags():
    for cut in range(1, len(IN_USE)):
        watch = fed(b"[INFO] Starting\nalembic noise\n" + IN_USE[:cut], IN_USE[cut:])
        assert watch.kind == "in_use", cut
    assert watch.message[0].startswith("Another ComfyUI is already using this database")
    assert watch.message[-1].endswith("--disable-assets")


def test_output_without_the_marker_leaves_nothing():
    watch = fed(b"Starting server\n", b"\r 10%|###   " * 5000, b"To see the GUI go to: http://x\n")
    assert watch.kind is None
    assert watch.problem("a", COMMAND) is None
    assert all(len(rest) <= PARTIAL_LIMIT for rest in watch._partial.values())


def test_the_problem_names_instance_database_and_fix():
    problem = fed(IN_USE).problem("core-2", COMMAND)
    line = problem.line()
    assert problem.kind == "database-in-use" and problem.exit_code == 75
    assert "instance 'core-2'" in line
    assert "/srv/shared.db" in line  # the last --database-url is the one ComfyUI used
    assert "ASSETS_STARTUP_FAILED: in_use" in line
    assert "remove --database-url from CLI_ARGS" in line and "COMFY_ASSETS=off" in line
    assert "\n" not in line


def test_without_a_url_the_message_names_the_database():
    problem = fed(IN_USE).problem("a", ["python", "main.py"])
    assert "/data/instances/a/user/comfyui.db" in problem.line()


@pytest.mark.parametrize("kind, problem_kind, code", [
    ("in_use", "database-in-use", 75), ("locked", "database-in-use", 75),
    ("not_writable", "not-writable", 77), ("path_blocked", "cannot-create", 73),
    ("corrupt", "database-unusable", 65), ("newer_revision", "database-unusable", 65),
    ("unsupported_url", "bad-setting", 78), ("missing_packages", "comfyui-startup-failed", 1),
    ("something_new", "comfyui-startup-failed", 1),
])
def test_every_kind_maps_to_a_documented_problem(kind, problem_kind, code):
    problem = fed(f"ASSETS_STARTUP_FAILED: {kind}\nwhat\nfix\n".encode(), fd=1).problem("a", COMMAND)
    assert (problem.kind, problem.exit_code) == (problem_kind, code)
    assert problem.fix


def test_every_mapped_kind_is_a_problem_kind():
    assert {kind for kind, _what, _fix in KINDS.values()} <= set(PROBLEM_KINDS)


def test_database_of_reads_file_urls_only():
    assert database_of(["--database-url", "sqlite:////x/db.db"]) == "/x/db.db"
    assert database_of(["--database-url", "sqlite:///:memory:"]) is None
    assert database_of(["--database-url", "postgresql://h/db"]) is None
    assert database_of([]) is None
