"""extra_model_paths.yaml, read without a YAML library (PyYAML is no dependency of comfy-init):
the subset ComfyUI's example file and users write, which is all ComfyUI's own loader acts on.

    <section>:
        base_path: /some/where          # relative: to the yaml file's folder
        is_default: true
        checkpoints: models/checkpoints # relative: to base_path
        loras: |
            models/loras
            more/loras

Returns (section, folder, absolute path) for every model folder entry; `base_path`, `is_default`,
`custom_nodes` and `download_model_base` are not model folders. A line this reader does not
understand raises ValueError naming its number, so a damaged file is reported, not half-read.
"""

import os

NOT_FOLDERS = ("base_path", "is_default", "custom_nodes", "download_model_base")


def _value(text):
    text = text.strip()
    if text[:1] in "\"'" and text[-1:] == text[:1] and len(text) >= 2:
        return text[1:-1]
    if " #" in text:
        text = text.split(" #", 1)[0].rstrip()
    return text


def _sections(text):
    """{section: {key: [values]}} of the subset above."""
    sections, section, key, block_indent = {}, None, None, None
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if block_indent is not None and indent >= block_indent and key is not None:
            sections[section][key].append(_value(stripped))
            continue
        block_indent = None
        name, colon, rest = stripped.partition(":")
        if not colon or "\t" in raw[:indent]:
            raise ValueError(f"line {number}: expected `name: value`")
        if indent == 0:
            if _value(rest):
                raise ValueError(f"line {number}: a section takes no value")
            section, key = name.strip(), None
            sections[section] = {}
            continue
        if section is None:
            raise ValueError(f"line {number}: an entry outside any section")
        key, value = name.strip(), _value(rest)
        if value in ("|", "|-", ">", ">-"):
            sections[section][key], block_indent = [], indent + 1
        else:
            sections[section][key] = [value] if value else []
    return sections


def model_folders(path, text):
    """(section, folder, absolute path) for every model folder entry of the file at `path`."""
    here = os.path.dirname(os.path.abspath(path))
    found = []
    for section, keys in _sections(text).items():
        base = (keys.get("base_path") or [""])[0]
        base = os.path.join(here, os.path.expanduser(base)) if base else here
        for key, values in keys.items():
            if key in NOT_FOLDERS:
                continue
            for value in values:
                if value:
                    found.append((section, key, os.path.normpath(os.path.join(base, os.path.expanduser(value)))))
    return found
