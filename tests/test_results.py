"""The JSON envelope every command prints with --json: its keys are a contract for scripts."""

import io
import json

from comfy_init.errors import DataError
from comfy_init.problems import KINDS, Problem, exit_code_of
from comfy_init.results import Result, render

ENVELOPE_KEYS = {"comfy_init_result", "command", "status", "exit_code", "data", "problems"}
PROBLEM_KEYS = {"kind", "path", "message", "fix", "details", "exit_code"}


def envelope_of(result):
    out = io.StringIO()
    code = render(result, as_json=True, stdout=out)
    document = json.loads(out.getvalue())
    assert code == document["exit_code"]
    return document


def test_success_envelope():
    document = envelope_of(Result("health", {"healthy": True}, ["healthy"]))
    assert set(document) == ENVELOPE_KEYS
    assert document == {"comfy_init_result": 1, "command": "health", "status": "ok", "exit_code": 0,
                        "data": {"healthy": True}, "problems": []}


def test_failure_envelope_carries_each_problem_with_its_kind_and_code():
    error = DataError(Problem("link-expected", "is a real directory", path="/d/x", fix="move it"),
                      Problem("not-writable", "cannot be written", path="/d/y"))
    document = envelope_of(Result.failure("run --dry-run", error))
    assert (document["status"], document["exit_code"]) == ("failed", 65)
    assert [set(p) for p in document["problems"]] == [PROBLEM_KEYS, PROBLEM_KEYS]
    assert [(p["kind"], p["path"], p["exit_code"]) for p in document["problems"]] == [
        ("link-expected", "/d/x", 65), ("not-writable", "/d/y", 77)]


def test_exit_codes_come_from_kinds_not_wording():
    assert exit_code_of([Problem("not-writable", "anything at all")]) == 77
    assert exit_code_of([Problem("not-writable", "x"), Problem("link-expected", "y")]) == 65
    assert exit_code_of([Problem("port-in-use", "x"), Problem("bad-setting", "y")]) == 78
    assert all(isinstance(code, int) and text for code, text in KINDS.values())


def test_text_rendering_puts_problems_on_stderr_in_one_format(capsys):
    error = DataError(Problem("escapes-root", "leads out", path="/d/l", fix="replace it"))
    assert render(Result.failure("x", error)) == 65
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "ERROR: comfy-init: /d/l: leads out; replace it\n"


def test_paths_that_are_not_utf8_never_crash_either_rendering():
    odd = b"/d/\xff".decode("utf-8", "surrogateescape")
    result = Result("x", {"path": odd}, [f"made {odd}"], [Problem("not-writable", "no", path=odd)])
    assert json.loads(json.dumps(envelope_of(result)))["data"]["path"] == odd
    out = io.StringIO()
    render(result, stdout=out)
    assert "made /d/" in out.getvalue()


def test_a_newline_in_a_value_never_makes_a_second_log_line():
    problem = Problem("not-writable", "cannot be written", path="/d/a\nERROR: forged", fix="fix it")
    assert problem.lines() == ["/d/a\\nERROR: forged: cannot be written; fix it"]
