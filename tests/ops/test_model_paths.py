"""extra_model_paths.yaml read without PyYAML: the same folders PyYAML finds in ComfyUI's format,
and one clear line for what it cannot read."""

import pytest
import yaml

from comfy_init.ops.models.extra_paths import model_folders
from comfy_init.ops.models.checks import partial_target, safetensors_damage
from tests.support.models import safetensors_bytes, write

EXAMPLE = """\
# comment
comfyui:
    base_path: /data/comfy/
    is_default: true
    checkpoints: models/checkpoints/   # trailing comment
    loras: |
        models/loras
        more/loras
    custom_nodes: custom_nodes/
other:
    base_path: "relative base"
    vae: 'vae folder'
"""


def test_the_folders_match_what_pyyaml_reads(tmp_path):
    path = tmp_path / "extra_model_paths.yaml"
    found = model_folders(str(path), EXAMPLE)
    expected = []
    for section, keys in yaml.safe_load(EXAMPLE).items():
        base = keys.get("base_path", "")
        base = base if base.startswith("/") else f"{tmp_path}/{base}"
        for key, value in keys.items():
            if key not in ("base_path", "is_default", "custom_nodes"):
                expected += [(section, key, f"{base.rstrip('/')}/{v.strip().rstrip('/')}")
                             for v in str(value).splitlines() if v.strip()]
    assert found == expected


@pytest.mark.parametrize("text", ["comfyui:\n  loras models\n", "  loras: x\n", "comfyui: value\n"])
def test_what_it_cannot_read_names_the_line(text):
    with pytest.raises(ValueError, match=r"line \d"):
        model_folders("/x/extra_model_paths.yaml", text)


def test_partial_names_and_safetensors_headers(tmp_path):
    assert partial_target("a.safetensors.download") == "a.safetensors"
    assert partial_target(".a.ckpt.tmp-1-ff") == "a.ckpt" and partial_target("a.ckpt") is None
    good = write(tmp_path / "g.safetensors", safetensors_bytes(100))
    assert safetensors_damage(good, 8 + len(safetensors_bytes(100)) - 8) == ""
    assert "8-byte" in safetensors_damage(write(tmp_path / "s", b"1234"), 4)
    not_object = b"[1, 2]  "
    blob = len(not_object).to_bytes(8, "little") + not_object
    assert "not a JSON object" in safetensors_damage(write(tmp_path / "n", blob), len(blob))
