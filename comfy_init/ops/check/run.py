"""`comfy-init check [--fix]`: every checker of the table, then (with --fix) the safe fixes, then a
fresh look, so what is reported is what remains.

A checker is `find(ctx) -> [Problem]` and, optionally, a safe fixer `fix(ctx, problem)` for the
kinds in `fixes`: it looks again right before it acts, returns what it did (one line), None when
there is nothing (left) to do safely, or raises a ComfyInitError when it cannot. A checker that
lives in another package is named "module:function", imported only when check runs, and called
with the plain values (`find(layout)`, or `find(layout, instance_ids=...)` when it takes them;
`fix(layout, problem)`), so it plugs in
with one row and check does not import what it does not run.
"""

import importlib
import inspect

from comfy_init.errors import ComfyInitError
from comfy_init.ops.check import registry, temps, tree, writable
from comfy_init.ops.check.context import Context
from comfy_init.problems import Problem, one_line
from comfy_init.results import Result


class Checker:
    __slots__ = ("name", "_find", "_fix", "fixes")

    def __init__(self, name, find, fix=None, fixes=()):
        self.name = name
        self._find = find
        self._fix = fix
        self.fixes = tuple(fixes)

    def find(self, ctx):
        if isinstance(self._find, str):
            find = _resolve(self._find)
            takes_ids = "instance_ids" in inspect.signature(find).parameters
            return list(find(ctx.layout, instance_ids=ctx.instance_ids) if takes_ids else find(ctx.layout))
        return list(self._find(ctx))

    def fix(self, ctx, problem):
        if isinstance(self._fix, str):
            return _resolve(self._fix)(ctx.layout, problem)
        return self._fix(ctx, problem)


def _resolve(name):
    module, attribute = name.split(":")
    return getattr(importlib.import_module(module), attribute)


# In this order, which is also the order of the fixes: temporaries first (a registry write removes
# its own stale temporaries silently, so they are removed, and reported, before one happens).
CHECKERS = (
    Checker("temporaries", temps.find_temps, temps.fix_temp, fixes=("stray-temporary",)),
    Checker("registry", registry.find_entries, registry.register_orphan, fixes=("unregistered-directory",)),
    Checker("ports-and-gpus", registry.find_ports),
    Checker("tree", tree.find_tree, tree.fix_link, fixes=("link-missing",)),
    Checker("databases", tree.find_databases),
    Checker("writable", writable.find_unwritable),
    Checker("model-duplicates", "comfy_init.ops.models.duplicates:find_duplicates",
            "comfy_init.ops.models.duplicates:fix_for_check", fixes=("model-duplicate",)),
    Checker("migration", "comfy_init.ops.migrate.migration:unfinished",
            "comfy_init.ops.migrate.migration:finish_unfinished", fixes=("migration-unfinished",)),
)


def findings(ctx, checkers=CHECKERS):
    """(checker, problem) for everything every checker finds. A checker that fails reports why as a
    finding of its own; the others still run."""
    found = []
    for checker in checkers:
        try:
            found += [(checker, problem) for problem in checker.find(ctx)]
        except ComfyInitError as error:
            found += [(checker, problem) for problem in error.problems]
        except OSError as error:
            found.append((checker, Problem("io-error", f"the {checker.name} check failed: {error.strerror or error}",
                                           path=error.filename, fix="check the filesystem of the data directory")))
    return found


def _fix_all(ctx, found):
    fixed, failed = [], []
    for checker, problem in found:
        if problem.kind not in checker.fixes:
            continue
        try:
            done = checker.fix(ctx, problem)
        except ComfyInitError as error:
            failed += [{"finding": problem.as_dict(), "problem": p.as_dict()} for p in error.problems]
            continue
        except OSError as error:
            failed.append({"finding": problem.as_dict(), "problem": Problem(
                "io-error", f"cannot fix it: {error.strerror or error}", path=error.filename or problem.path).as_dict()})
            continue
        if done:
            fixed.append({"kind": problem.kind, "path": problem.path, "done": done})
    return fixed, failed


def check_data(layout, *, fix=False, puid=None, pgid=None, app_dir=None, stale_after=None, checkers=CHECKERS):
    """Run every check on the tree of `layout`; with `fix`, the safe fixes first. Exit 0 when
    nothing is found (or left), 1 when findings remain."""
    options = {"puid": puid, "pgid": pgid, "app_dir": app_dir}
    if stale_after is not None:
        options["stale_after"] = stale_after
    ctx = Context(layout, **options)
    found = findings(ctx, checkers)
    fixed, failed = _fix_all(ctx, found) if fix else ([], [])
    if fixed:
        ctx = ctx.renewed()
        found = findings(ctx, checkers)
    remaining = [problem for _, problem in found]
    lines = [f"fixed: {one_line(item['done'])}" for item in fixed]
    lines += [one_line(f"could not fix {item['finding']['path']}: {item['problem']['message']}") for item in failed]
    lines.append(_summary(layout, ctx, remaining, fix))
    data = {"data": layout.data, "instances": ctx.instance_ids, "checks": [c.name for c in checkers],
            "findings": len(remaining), "fixed": fixed, "not_fixed": failed,
            "fixable": sum(1 for c, p in found if p.kind in c.fixes)}
    return Result("check", data, lines, remaining, exit_code=1 if remaining else 0)


def _summary(layout, ctx, remaining, fix):
    checked = f"{len(ctx.instance_ids)} instance{'' if len(ctx.instance_ids) == 1 else 's'}"
    if not remaining:
        return f"{layout.data}: no findings ({checked} checked)"
    kinds = sorted({problem.kind for problem in remaining})
    hint = "" if fix else "; `comfy-init check --fix` does the safe fixes"
    return f"{layout.data}: {len(remaining)} finding{'' if len(remaining) == 1 else 's'} ({', '.join(kinds)}) in {checked}{hint}"
