"""docs/troubleshooting.md names every exit code and every problem kind, and every kind `check`
can report says whether `--fix` fixes it."""

import re
from pathlib import Path

from comfy_init import exitcodes
from comfy_init.ops.check.run import CHECKERS
from comfy_init.problems import KINDS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md").read_text(encoding="utf-8")


def rows():
    """kind -> the cells of its row in the tables of kinds (whose second column is the exit code)."""
    found = {}
    for line in DOC.splitlines():
        match = re.match(r"\| `([a-z-]+)` \|(.*)\|$", line)
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", match[2])] if match else []
        if cells and cells[0].isdigit():
            found.setdefault(match[1], cells)
    return found


def test_every_kind_has_a_row_with_its_exit_code_and_a_fix():
    table = rows()
    assert sorted(set(KINDS) - set(table)) == []
    wrong = [kind for kind, (code, _) in KINDS.items() if table[kind][0] != str(code)]
    assert wrong == []
    assert [kind for kind in KINDS if not table[kind][-1]] == []


def test_every_exit_code_is_in_the_table():
    codes = {value for name, value in vars(exitcodes).items() if name.isupper()}
    listed = {int(m) for m in re.findall(r"^\| (\d+) \|", DOC, flags=re.M)}
    assert codes <= listed


def test_the_kinds_fix_fixes_are_marked_fix_and_no_others():
    fixed = {kind for checker in CHECKERS for kind in checker.fixes}
    marked = {kind for kind, cells in rows().items() if len(cells) == 4 and "fix" in cells[1]}
    assert marked == fixed
