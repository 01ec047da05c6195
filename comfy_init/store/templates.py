"""Templates on disk: meta/shared-configs/<name>/{template.json, files/<instance path>}.

A template is written once and never edited: `write_template` assembles it in a hidden folder
beside the others (`.<name>.building-<random>`, every file through write_atomic), then renames that
folder into place under `shared-configs/.lock`, so a reader sees a whole template or none, and two
creators of one name cannot both win. `move_to_trash` renames it into meta/trash (nothing deleted).

Every read of template.json is validated against template.schema.json (shipped beside this file)
with jsonschema: templates are a management-CLI matter, never read by `comfy-init run`.
"""

import json
import os
import re
import secrets
import shutil

from comfy_init.errors import error_for
from comfy_init.layout import TEMPLATE_NAME_PATTERN
from comfy_init.problems import Problem
from comfy_init.store import locks
from comfy_init.store.clock import utc_stamp
from comfy_init.store.files import fsync_directory, io_failure, read_regular, unused_name, write_atomic

TEMPLATE_VERSION = 1
LOCK_TIMEOUT = 10.0
_SCHEMA_RESOURCE = "template.schema.json"
_validator_cache = None
_BUILDING = re.compile(r"\A\.[A-Za-z0-9][A-Za-z0-9._-]{0,63}\.building-[0-9a-f]+\Z")


def name_problems(name):
    if TEMPLATE_NAME_PATTERN.match(name or ""):
        return []
    return [Problem("usage", f"{name!r} is not a valid template name",
                    fix="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, e.g. studio")]


def _validator():
    global _validator_cache
    if _validator_cache is None:
        from importlib import resources

        import jsonschema

        text = resources.files(__package__).joinpath(_SCHEMA_RESOURCE).read_text(encoding="utf-8")
        _validator_cache = jsonschema.Draft202012Validator(json.loads(text))
    return _validator_cache


def _damaged(path, message, details=()):
    return error_for(Problem("template-damaged", message, path=path, details=details,
                             fix="recreate it (`comfy-init template delete` it, then `template create`), or restore "
                                 "template.json from a backup"))


def unknown(layout, name):
    return error_for(Problem("unknown-template", f"no template {name!r} in {layout.shared_configs}",
                             fix="`comfy-init template list` shows the templates"))


def decode_manifest(path, data):
    """The template document in `data` (the bytes of `path`), validated; template-damaged otherwise."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise _damaged(path, f"does not parse as JSON ({error})") from None
    version = document.get("template_version") if isinstance(document, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > TEMPLATE_VERSION:
        raise error_for(Problem("template-damaged", f"was written by a newer comfy-init (template version "
                                f"{version}; this one reads {TEMPLATE_VERSION})", path=path,
                                fix="upgrade comfy-init to use this template"))
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = ["  $" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
                 + f": {e.message[:300]}" for e in errors]
        raise _damaged(path, f"does not match the template schema ({len(errors)}):", lines)
    return document


def read_template(layout, name):
    """The validated template.json of template `name`: unknown-template (66) when there is none."""
    if name_problems(name):
        raise error_for(*name_problems(name))
    path = layout.template_manifest(name)
    data = read_regular(path)
    if data is None:
        raise unknown(layout, name)
    document = decode_manifest(path, data)
    if document["name"] != name:
        raise _damaged(path, f"names template {document['name']!r}, but lies in the folder of {name!r}")
    return document


def read_template_file(layout, name, relative):
    """The bytes of a file the template captured; template-damaged when it is missing."""
    path = layout.template_file(layout.template_dir(name), relative)
    data = read_regular(path)
    if data is None:
        raise _damaged(path, "is listed in template.json but missing")
    return data


def template_names(layout):
    """The names of the folders under shared-configs/ (hidden ones, such as a template being built,
    left out)."""
    try:
        entries = list(os.scandir(layout.shared_configs))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))


def write_template(layout, document, files):
    """Store template `document["name"]` with `files` ({instance path: bytes}); template-exists (65)
    when the name is taken. Returns the template's folder."""
    name = document["name"]
    problems = sorted(_validator().iter_errors(document), key=str)
    if problems:  # our own bug: never write what read_template would refuse
        raise _damaged(layout.template_manifest(name), "would not match the template schema",
                       [f"  {e.message}" for e in problems])
    os.makedirs(layout.shared_configs, exist_ok=True)
    with locks.hold(layout.templates_lock, LOCK_TIMEOUT):
        _remove_stale_building(layout)
        final = layout.template_dir(name)
        if os.path.lexists(final):
            raise exists_error(layout, name)
        building = layout.template_building_dir(name, secrets.token_hex(4))
        try:
            _fill(layout, building, document, files)
            os.rename(building, final)
            fsync_directory(layout.shared_configs)
        except OSError as error:
            raise io_failure(final, "cannot write the template", error) from None
        finally:
            if os.path.isdir(building):
                shutil.rmtree(building, ignore_errors=True)  # our own half-built folder, never a template
    return final


def _remove_stale_building(layout):
    """Half-built folders of creators that died: every creator builds only while holding the
    templates lock, so while we hold it, any such folder is a dead one's."""
    for entry in os.scandir(layout.shared_configs):
        if _BUILDING.match(entry.name) and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)


def _fill(layout, building, document, files):
    os.mkdir(building)
    for relative, data in files.items():
        path = layout.template_file(building, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, data)
    write_atomic(layout.manifest_in(building), (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())


def exists_error(layout, name):
    return error_for(Problem("template-exists", f"template {name!r} already exists", path=layout.template_dir(name),
                             fix=f"choose another name, or `comfy-init template delete {name} --yes` first"))


def move_to_trash(layout, name):
    """Rename template `name`'s folder into meta/trash/template-<name>-<UTC>; returns where it went."""
    if not os.path.lexists(layout.template_dir(name)):
        raise unknown(layout, name)
    with locks.hold(layout.templates_lock, LOCK_TIMEOUT):
        source = layout.template_dir(name)
        if not os.path.lexists(source):
            raise unknown(layout, name)
        os.makedirs(layout.trash, exist_ok=True)
        target = unused_name(layout.trash_entry(f"template-{name}-{utc_stamp()}"))
        try:
            os.rename(source, target)
        except OSError as error:
            raise error_for(Problem("cannot-create", f"cannot move it to {target}: {error.strerror}", path=source,
                                    fix="move it away yourself")) from None
    return target
