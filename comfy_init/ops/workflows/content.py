"""What counts as a ComfyUI workflow file, and the model files one needs.

Two shapes are accepted, the two ComfyUI writes and loads:
- the UI's (what `user/default/workflows/*.json` holds): an object whose `nodes` is a list of
  objects with an `id` and a string `type`, `links` a list when present;
- the API's ("Save (API)"): a non-empty object of node ids to {"class_type": str, "inputs": {...}}.

The models a workflow needs are the strings among its nodes' widget values (API: inputs) that
end in a model file extension, and the entries of a node's `properties.models` (name, directory),
which ComfyUI's templates carry; nodes of subgraphs (`definitions.subgraphs[].nodes`) count too.
"""

import json
import os

from comfy_init.errors import DataError
from comfy_init.problems import Problem

MODEL_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".gguf", ".onnx", ".pkl")


def invalid(path, why):
    return DataError(Problem("workflow-invalid", f"is not a ComfyUI workflow: {why}", path=path,
                             fix="save it from ComfyUI again (Workflow > Save or Export), or give another file"))


def _ui_problem(document):
    nodes = document.get("nodes")
    if not isinstance(nodes, list):
        return "no `nodes` list"
    for index, node in enumerate(nodes):
        if not isinstance(node, dict) or "id" not in node or not isinstance(node.get("type"), str):
            return f"nodes[{index}] has no `id` and string `type`"
    if "links" in document and not isinstance(document["links"], list):
        return "`links` is not a list"
    return None


def _is_api(document):
    return bool(document) and all(isinstance(node, dict) and isinstance(node.get("class_type"), str)
                                  and isinstance(node.get("inputs"), dict) for node in document.values())


def parse_workflow(data, path):
    """The workflow document of file bytes `data`; DataError (workflow-invalid, 65) naming `path`."""
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise invalid(path, "not UTF-8 text") from None
    except ValueError as error:
        raise invalid(path, f"not JSON ({error})") from None
    except RecursionError:
        raise invalid(path, "nested too deeply to be a workflow") from None
    if not isinstance(document, dict):
        raise invalid(path, "not a JSON object")
    if "nodes" in document:
        why = _ui_problem(document)
        if why:
            raise invalid(path, why)
    elif not _is_api(document):
        raise invalid(path, "neither a `nodes` list (a UI workflow) nor nodes with class_type and inputs (API)")
    return document


def _strings(values):
    if isinstance(values, dict):
        values = list(values.values())
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def _ui_nodes(document):
    nodes = list(document.get("nodes") or [])
    subgraphs = (document.get("definitions") or {}).get("subgraphs") if isinstance(document.get("definitions"), dict) else None
    for subgraph in subgraphs if isinstance(subgraphs, list) else ():
        if isinstance(subgraph, dict) and isinstance(subgraph.get("nodes"), list):
            nodes += subgraph["nodes"]
    return [node for node in nodes if isinstance(node, dict)]


def needed_models(document):
    """[(file name as the workflow writes it, model folder or None)], each once, in order."""
    found = []
    if "nodes" in document:
        for node in _ui_nodes(document):
            found += [(v, None) for v in _strings(node.get("widgets_values"))]
            properties = node.get("properties") if isinstance(node.get("properties"), dict) else {}
            for model in properties.get("models") or [] if isinstance(properties.get("models"), list) else []:
                if isinstance(model, dict) and isinstance(model.get("name"), str):
                    directory = model.get("directory")
                    found.append((model["name"], directory if isinstance(directory, str) else None))
    else:
        for node in document.values():
            found += [(v, None) for v in _strings(node.get("inputs"))]
    models = [(name, folder) for name, folder in found if name.strip().lower().endswith(MODEL_EXTENSIONS)]
    named = {name for name, folder in models if folder}
    models = [(name, folder) for name, folder in models if folder or name not in named]
    return list(dict.fromkeys(models))


def missing_models(layout, models):
    """The (name, folder) of `models` that no folder of shared/models holds (folder given: that one)."""
    try:
        with os.scandir(layout.shared_models) as entries:
            folders = sorted(e.name for e in entries if e.is_dir())
    except OSError:
        folders = []
    missing = []
    for name, folder in models:
        relative = name.strip().replace("\\", "/").lstrip("/")
        if ".." in relative.split("/"):
            missing.append((name, folder))
            continue
        places = ([folder] if "/" not in folder and not folder.startswith(".") else []) if folder else folders
        if not any(os.path.isfile(os.path.join(layout.shared_models, place, *relative.split("/"))) for place in places):
            missing.append((name, folder))
    return missing
