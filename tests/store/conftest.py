"""Fixtures for the instance registry tests: real files under tmp_path, real processes."""

import pytest
from tests.support.registry_data import claim, instance, registry_at


@pytest.fixture
def meta(tmp_path):
    return tmp_path / "meta"


@pytest.fixture
def registry(meta):
    return registry_at(meta, lock_timeout=5.0)


@pytest.fixture
def realistic(registry):
    """A registry written the way comfy-init writes it: two instances, one claimed (revision 3,
    .bak at revision 2). Returns the registry."""
    with registry.transaction() as doc:
        doc["instances"]["core-1"] = instance(port=8188, device="cuda", template="sdxl",
                                              description="main GPU instance")
    with registry.transaction() as doc:
        doc["instances"]["cpu-1"] = instance(port=8189, listen="127.0.0.1", device="cpu", template=None)
    with registry.transaction() as doc:
        doc["instances"]["core-1"]["claim_generation"] = 3
        doc["claims"]["core-1"] = claim()
    return registry
