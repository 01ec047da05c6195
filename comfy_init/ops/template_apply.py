"""`comfy-init template apply NAME ID`: a template's settings (and, when asked, its custom nodes)
onto a stopped instance. Returns a Result; nothing here prints.

The instance's lock is held for the whole apply, so a start waits and is then refused, and a
running instance (its lock held, or a live claim from another host) is refused with 75. Nothing is
lost: a settings file that differs is replaced atomically and the old one kept as
`<file>.before-template-<UTC>`; a node folder that exists is never touched (reported, skipped); a
node is cloned into a hidden folder and renamed into place only when its checkout succeeded.
"""

import os
import secrets

from comfy_init.errors import ComfyInitError, UsageError, error_for
from comfy_init.layout import before_template_name
from comfy_init.ops import git
from comfy_init.ops.compose import write_compose
from comfy_init.ops.template_capture import keep_own_secrets
from comfy_init.problems import Problem
from comfy_init.results import Result
from comfy_init.store import claims, conflicts, templates
from comfy_init.store.clock import utc_now, utc_stamp
from comfy_init.store.files import read_regular, refuse_non_regular, unused_name, write_atomic
from comfy_init.store.registry import Registry

NODE_MODES = ("clone", "skip")


def apply_template(layout, name, instance_id, *, nodes="skip", command="template apply"):
    try:
        return _apply(layout, name, instance_id, nodes, command)
    except ComfyInitError as error:
        return Result.failure(command, error)


def check_applicable(layout, name, instance_id):
    """The template's document, once the names are valid and the template reads; raises otherwise.
    Used by `instance create --template` before it writes anything."""
    problems = templates.name_problems(name) + conflicts.id_problems(instance_id)
    if problems:
        raise UsageError(*problems)
    return templates.read_template(layout, name)


def _apply(layout, name, instance_id, nodes, command):
    if nodes not in NODE_MODES:
        raise UsageError(Problem("usage", f"--nodes {nodes!r}", fix="use --nodes clone or --nodes skip"))
    document = check_applicable(layout, name, instance_id)
    registry = Registry(layout)
    instance = layout.instance(instance_id)
    if instance_id not in registry.load()["instances"] or not os.path.isdir(instance.root):
        raise error_for(Problem("unknown-instance", f"no configured instance {instance_id!r} in {layout.data}",
                                fix="`comfy-init instance list` shows the instances; `instance create ID --adopt` "
                                    "registers a directory"))
    files = {rel: templates.read_template_file(layout, name, rel) for rel in document["files"]}
    _check_targets(instance, files)
    lock = claims.lock_stopped(registry, instance_id, "stop its container first, then apply the template")
    try:
        written = [_write_file(instance, rel, data) for rel, data in files.items()]
        node_rows, problems = _nodes(instance, document["nodes"], nodes)
        _record(registry, instance_id, name, document["cli_args"])
    finally:
        lock.release()
    if document["cli_args"]:
        write_compose(layout)  # its service now passes them as CLI_ARGS
    data = {"name": name, "id": instance_id, "files": written, "nodes": node_rows,
            "requirements": {n["name"]: n["requirements"] for n in document["nodes"] if n["requirements"]},
            "cli_args": document["cli_args"]}
    return Result(command, data, _lines(name, instance_id, data), problems)


def _check_targets(instance, files):
    """Before anything is written: every target is a regular file or absent, inside the instance."""
    root = os.path.realpath(instance.root)
    for relative in files:
        target = instance.template_target(relative)
        refuse_non_regular(target)
        parent = os.path.dirname(target)
        while not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        if not (os.path.realpath(parent) + os.sep).startswith(root + os.sep):
            raise error_for(Problem("escapes-root", f"leads out of the instance (to {os.path.realpath(parent)})",
                                    path=parent, fix="make it a real directory of the instance"))


def _write_file(instance, relative, data):
    target = instance.template_target(relative)
    existing = read_regular(target)
    kept = []
    if existing is not None:
        data, kept = keep_own_secrets(relative, existing, data)
    if existing == data:
        return {"path": relative, "action": "unchanged", "backup": None, "kept_secrets": kept}
    parent = os.path.dirname(target)
    created = _make_parents(parent)
    if existing is None:
        write_atomic(target, data)
        _give_like(instance.user, [*created, target])
        return {"path": relative, "action": "written", "backup": None, "kept_secrets": kept}
    backup = unused_name(before_template_name(target, utc_stamp()))
    write_atomic(target, data, backup=backup)
    return {"path": relative, "action": "replaced", "backup": backup, "kept_secrets": kept}


def _make_parents(directory):
    missing = []
    while not os.path.lexists(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for path in reversed(missing):
        os.mkdir(path)
    return missing


def _give_like(reference, paths):
    """Started as root: what we created goes to the owner of `reference` (ComfyUI's user), so
    ComfyUI can rewrite it. A fixed, small list of paths, never a walk of existing files."""
    if os.geteuid() != 0:
        return
    info = os.stat(reference)
    for path in paths:
        os.lchown(path, info.st_uid, info.st_gid)


def _nodes(instance, nodes, mode):
    rows, problems = [], []
    for node in nodes:
        row = {"name": node["name"], "source": node["source"]}
        if mode == "skip":
            row.update(action="skipped", reason="--nodes skip")
        elif node["git"] is None:
            row.update(action="skipped", reason=_install_hint(node))
        elif os.path.lexists(instance.custom_node(node["name"])):
            row.update(action="skipped", reason=f"custom_nodes/{node['name']} exists: left as it is")
        else:
            problem = _clone(instance, node)
            row.update(action="failed" if problem else "cloned", reason=problem.message if problem else None)
            problems += [problem] if problem else []
        rows.append(row)
    return rows, problems


def _install_hint(node):
    registry = node["registry"]
    if registry:
        version = f"@{registry['version']}" if registry.get("version") else ""
        return f"not a git checkout: install {registry['id']}{version} from the registry (ComfyUI-Manager)"
    return "not a git checkout and no registry id: copy it yourself"


def _clone(instance, node):
    """Clone the node at its commit into a hidden folder, then rename it into place; a Problem
    (node-clone-failed) when that fails, with nothing left behind."""
    import shutil

    target = instance.custom_node(node["name"])
    os.makedirs(instance.custom_nodes, exist_ok=True)
    building = instance.node_clone_dir(node["name"], secrets.token_hex(4))
    try:
        git.clone_at(node["git"]["remote"], node["git"]["commit"], building)
        os.rename(building, target)
    except (git.GitFailed, OSError) as error:
        message = error.message if isinstance(error, git.GitFailed) else f"cannot move it into place: {error}"
        return Problem("node-clone-failed", f"custom node {node['name']!r}: {message}", path=target,
                       fix=f"clone it yourself: git clone {node['git']['remote']} {target} && "
                           f"git -C {target} checkout {node['git']['commit']}")
    finally:
        if os.path.isdir(building):
            shutil.rmtree(building, ignore_errors=True)  # our own half-made clone
    _give_tree_like(instance.custom_nodes, target)
    return None


def _give_tree_like(reference, tree):
    """Started as root: a node we just cloned goes to the owner of custom_nodes/ (our own new files
    only, so ComfyUI-Manager can update it)."""
    if os.geteuid() != 0:
        return
    info = os.stat(reference)
    for directory, folders, names in os.walk(tree):
        for entry in [directory] + [os.path.join(directory, n) for n in folders + names]:
            os.lchown(entry, info.st_uid, info.st_gid)


def _record(registry, instance_id, name, cli_args):
    with registry.transaction() as document:
        entry = document["instances"].get(instance_id)
        if entry is None:
            return
        entry["template"] = name
        entry["template_applied_at"] = utc_now()
        if cli_args:
            entry["cli_args"] = list(cli_args)


def _lines(name, instance_id, data):
    lines = [f"applied template {name!r} to instance {instance_id!r}"]
    for row in data["files"]:
        backup = f" (the old one is kept as {row['backup']})" if row["backup"] else ""
        own = f"; the instance's own {', '.join(row['kept_secrets'])} kept" if row["kept_secrets"] else ""
        lines.append(f"  {row['path']}: {row['action']}{backup}{own}")
    for row in data["nodes"]:
        lines.append(f"  custom_nodes/{row['name']}: {row['action']}" + (f" ({row['reason']})" if row["reason"] else ""))
    if data["requirements"]:
        lines.append(f"the nodes list {sum(map(len, data['requirements'].values()))} requirements "
                     "(`comfy-init template show` lists them): install them in the instance's Python if missing")
    if data["cli_args"]:
        lines.append("ComfyUI arguments recorded in the registry entry (cli_args): " + " ".join(data["cli_args"]))
    return lines
