"""`comfy-init template create|list|show|delete`: reusable instance configurations under
meta/shared-configs/<name>/. Every function returns a Result; nothing here prints. (`apply` is
comfy_init.ops.template_apply.)

A template holds an instance's settings files (secrets left out and reported), its custom node list
(git remote and commit, or registry id and version, and each node's requirements) and chosen ComfyUI
arguments. docs/templates.md describes the format.
"""

import os
import shlex

from comfy_init.comfyui.command import owned_argument_problems
from comfy_init.errors import ComfyInitError, UsageError, error_for
from comfy_init.layout import TEMPLATE_KEYBINDINGS, TEMPLATE_MANAGER_CONFIGS, TEMPLATE_SETTINGS
from comfy_init.ops.template_capture import capture_nodes, scrub_ini, scrub_json
from comfy_init.problems import Problem
from comfy_init.results import Result
from comfy_init.store import conflicts, templates
from comfy_init.store.clock import utc_now
from comfy_init.store.files import read_regular


def split_args(text):
    """The argument list of `--args TEXT` (shell-split); --port and --listen refused (78)."""
    if not text:
        return []
    try:
        arguments = shlex.split(text)
    except ValueError as error:
        raise UsageError(Problem("usage", f"--args {text!r} cannot be split like a shell line ({error})",
                                 fix="quote it as you would in a shell, e.g. --args '--preview-method auto'")) from None
    problems = owned_argument_problems(arguments, "--args")
    if problems:
        raise error_for(*problems)
    return arguments


# -- create ---------------------------------------------------------------------------------------

def create_template(layout, name, instance_id, *, args=None, description=None):
    try:
        return _create(layout, name, instance_id, args, description)
    except ComfyInitError as error:
        return Result.failure("template create", error)


def _create(layout, name, instance_id, args, description):
    problems = templates.name_problems(name) + conflicts.id_problems(instance_id)
    if problems:
        raise UsageError(*problems)
    cli_args = split_args(args)
    instance = layout.instance(instance_id)
    if not os.path.isdir(instance.root) or os.path.islink(instance.root):
        raise error_for(Problem("unknown-instance", f"no instance directory for {instance_id!r}", path=instance.root,
                                fix="`comfy-init instance list` shows the instances"))
    if os.path.lexists(layout.template_dir(name)):
        raise templates.exists_error(layout, name)
    files, secrets = capture_files(instance)
    nodes, node_secrets = capture_nodes(instance.custom_nodes)
    secrets += node_secrets
    document = {"template_version": templates.TEMPLATE_VERSION, "name": name, "created_at": utc_now(),
                "source_instance": instance_id, "files": sorted(files), "secrets_left_out": secrets,
                "nodes": nodes, "cli_args": cli_args}
    if description:
        document["description"] = description
    folder = templates.write_template(layout, document, files)
    lines = [f"created template {name!r} from instance {instance_id!r} in {folder}"] + summary_lines(document)
    if secrets:
        lines.append("secrets left out (their values were not copied):")
        lines += [f"  {secret['file']}: {secret['key']}" for secret in secrets]
    return Result("template create", {"name": name, "path": folder, "template": document}, lines)


def capture_files(instance):
    """({instance path: bytes to store}, [secrets left out]) for the settings files the instance has;
    ComfyUI-Manager's config from its 4.x place, else the older one."""
    manager = next((rel for rel in TEMPLATE_MANAGER_CONFIGS
                    if os.path.lexists(instance.template_target(rel))), None)
    files, secrets = {}, []
    for relative in (TEMPLATE_SETTINGS, TEMPLATE_KEYBINDINGS) + ((manager,) if manager else ()):
        data = read_regular(instance.template_target(relative))
        if data is None:
            continue
        if relative.endswith(".json"):
            data, removed = scrub_json(relative, data)
        else:
            data, removed = scrub_ini(data)
        files[relative] = data
        secrets += [{"file": relative, "key": key} for key in removed]
    return files, secrets


def summary_lines(document):
    nodes = document["nodes"]
    by_source = {}
    for node in nodes:
        by_source[node["source"]] = by_source.get(node["source"], 0) + 1
    sources = ", ".join(f"{count} {source}" for source, count in sorted(by_source.items()))
    requirements = sum(len(node["requirements"]) for node in nodes)
    return [f"files: {', '.join(document['files']) or 'none'}",
            f"custom nodes: {len(nodes)}{f' ({sources})' if nodes else ''}, {requirements} requirement lines",
            f"ComfyUI arguments: {shlex.join(document['cli_args']) or 'none'}"]


# -- list, show, delete ----------------------------------------------------------------------------

def list_templates(layout):
    rows, problems = [], []
    for name in templates.template_names(layout):
        try:
            document = templates.read_template(layout, name)
        except ComfyInitError as error:
            problems += error.problems
            rows.append({"name": name, "valid": False})
            continue
        rows.append({"name": name, "valid": True, "created_at": document["created_at"],
                     "source_instance": document["source_instance"], "files": len(document["files"]),
                     "nodes": len(document["nodes"]), "cli_args": document["cli_args"]})
    return Result("template list", {"templates": rows}, _table(rows) if rows else
                  ["no templates (create one: comfy-init template create NAME --from ID)"], problems)


def _table(rows):
    header = ("NAME", "FROM", "CREATED", "FILES", "NODES", "ARGS")
    body = [(r["name"], r.get("source_instance", "-"), r.get("created_at", "damaged"), str(r.get("files", "-")),
             str(r.get("nodes", "-")), shlex.join(r.get("cli_args") or []) or "-") for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *body]]


def show_template(layout, name):
    try:
        document = templates.read_template(layout, name)
    except ComfyInitError as error:
        return Result.failure("template show", error)
    lines = [f"template {name!r}: from instance {document['source_instance']!r} at {document['created_at']}",
             f"path: {layout.template_dir(name)}"] + summary_lines(document)
    for node in document["nodes"]:
        lines.append(f"  {node['name']}: {_origin_text(node)}")
        lines += [f"    requires {line}" for line in node["requirements"]]
    if document["secrets_left_out"]:
        lines.append("secrets left out: " + ", ".join(f"{s['file']}: {s['key']}" for s in document["secrets_left_out"]))
    return Result("template show", {"name": name, "path": layout.template_dir(name), "template": document}, lines)


def _origin_text(node):
    if node["git"]:
        return f"git {node['git']['remote']} at {node['git']['commit'][:12]}"
    if node["registry"]:
        version = node["registry"].get("version")
        return f"registry {node['registry']['id']}{'@' + version if version else ''} ({node['source']})"
    return f"{node['source']} (no remote or registry id known)"


def delete_template(layout, name):
    try:
        if templates.name_problems(name):
            raise UsageError(*templates.name_problems(name))
        moved = templates.move_to_trash(layout, name)
    except ComfyInitError as error:
        return Result.failure("template delete", error)
    return Result("template delete", {"name": name, "trash": moved},
                  [f"deleted template {name!r}: its folder is now {moved}",
                   f"undo: mv {moved} {layout.template_dir(name)}"])
