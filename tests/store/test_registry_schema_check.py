"""The fast yes/no registry check (comfy_init.store.schema) agrees with jsonschema on the same schema."""

import copy

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfy_init.store import registry as registry_module
from comfy_init.store.schema import FastValidator
from tests.support.registry_data import claim, instance

SCHEMA = registry_module.schema()
FAST = FastValidator(SCHEMA)
SLOW = jsonschema.Draft202012Validator(SCHEMA)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 70000) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, 1, 1.0, 1.5, 65535, 65536, -1, True, False, "", "a", "core-1", "Core", "-x", "a\n"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6)


def valid_document():
    return {"schema_version": 2, "revision": 3, "updated_at": "2026-12-01T00:00:00Z",
            "instances": {"core-1": instance(port=8188), "cpu-1": instance(device="cpu", template=None)},
            "claims": {"core-1": claim()}}


PATHS = [("schema_version",), ("revision",), ("updated_at",), ("instances",), ("claims",),
         ("instances", "core-1"), ("instances", "core-1", "port"), ("instances", "core-1", "claim_generation"),
         ("instances", "core-1", "device"), ("instances", "core-1", "template"),
         ("instances", "core-1", "gpus"), ("instances", "core-1", "variant"), ("instances", "core-1", "share_gpu"), ("instances", "core-1", "extra"),
         ("claims", "core-1"), ("claims", "core-1", "pid"), ("claims", "core-1", "lease_seconds"),
         ("claims", "core-1", "container_id"), ("claims", "core-1", "holds_lock"), ("claims", "core-1", "token"),
         ("claims", "core-1", "generation"), ("claims", "core-1", "heartbeat"), ("extra",)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=json_values, delete=st.booleans(), key=st.text(max_size=70))
def test_fast_and_jsonschema_agree_on_mutated_documents(path, value, delete, key):
    document = valid_document()
    node = document
    for part in path[:-1]:
        node = node[part]
    if delete:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = copy.deepcopy(value)
    if isinstance(document.get("instances"), dict):
        document["instances"][key] = instance()  # keys that are and are not instance ids
    assert FAST.is_valid(document) == SLOW.is_valid(document)


def test_the_valid_document_is_valid_for_both():
    assert FAST.is_valid(valid_document()) and SLOW.is_valid(valid_document())


def test_a_schema_keyword_the_fast_check_does_not_know_is_refused():
    with pytest.raises(ValueError, match="does not know the keywords"):
        FastValidator({"type": "object", "minProperties": 1})
