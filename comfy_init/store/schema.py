"""A fast yes/no check of a document against the registry's JSON Schema, without jsonschema.

Every registry read is validated, and `comfy-init run` reads the registry on every container start:
importing jsonschema costs about 110 ms there, more than the rest of comfy-init's start together.
So the start path asks this module "valid or not?"; only when the answer is "not" (or for the
management CLI's messages) is jsonschema imported, to say exactly what is wrong.

This interprets the SAME schema file, for the keywords that schema uses (SUPPORTED); a schema with
any other keyword is refused at once, so the two can never silently disagree. Semantics follow
JSON Schema 2020-12 as jsonschema implements it: 1.0 is an integer, true is not a number, `pattern`
is an unanchored re.search, const/enum compare JSON values (1 == 1.0, true != 1). The tests check
that both validators agree on generated documents.
"""

import re

SUPPORTED = frozenset({
    "$schema", "$id", "title", "description", "$defs", "$ref", "type", "required", "properties",
    "additionalProperties", "propertyNames", "pattern", "const", "enum", "minimum", "maximum",
    "exclusiveMinimum", "items",
})

_TYPES = {
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "string": lambda v: type(v) is str,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
    "number": lambda v: type(v) in (int, float),
    "integer": lambda v: type(v) is int or (type(v) is float and v.is_integer()),
}


class FastValidator:
    def __init__(self, schema):
        unsupported = sorted(_keywords(schema) - SUPPORTED)
        if unsupported:
            raise ValueError(f"the fast registry check does not know the keywords {unsupported}")
        self.root = schema
        self._patterns = {}

    def is_valid(self, instance):
        return self._valid(self.root, instance)

    def _valid(self, schema, value):
        if "$ref" in schema:
            schema = self._resolve(schema["$ref"])
        kinds = schema.get("type")
        if kinds is not None:
            names = kinds if isinstance(kinds, list) else (kinds,)
            if not any(_TYPES[name](value) for name in names):
                return False
        if "const" in schema and not _same(schema["const"], value):
            return False
        if "enum" in schema and not any(_same(option, value) for option in schema["enum"]):
            return False
        if type(value) in (int, float):
            if "minimum" in schema and not value >= schema["minimum"]:
                return False
            if "maximum" in schema and not value <= schema["maximum"]:
                return False
            if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
                return False
        if type(value) is str and "pattern" in schema and not self._pattern(schema["pattern"]).search(value):
            return False
        if type(value) is dict:
            return self._valid_object(schema, value)
        if type(value) is list and "items" in schema:
            return all(self._valid(schema["items"], item) for item in value)
        return True

    def _valid_object(self, schema, value):
        if any(name not in value for name in schema.get("required", ())):
            return False
        names = schema.get("propertyNames")
        if names is not None and not all(self._valid(names, key) for key in value):
            return False
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                if not self._valid(properties[key], item):
                    return False
            elif extra is False:
                return False
            elif isinstance(extra, dict) and not self._valid(extra, item):
                return False
        return True

    def _resolve(self, ref):
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are supported, not {ref!r}")
        node = self.root
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def _pattern(self, text):
        compiled = self._patterns.get(text)
        if compiled is None:
            compiled = self._patterns[text] = re.compile(text)
        return compiled


def _same(a, b):
    """JSON equality: numbers by value (1 == 1.0), booleans apart from numbers, containers deeply."""
    numeric = (int, float)
    if type(a) in numeric and type(b) in numeric:
        return a == b
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(map(_same, a, b))
    return a == b


def _keywords(schema):
    """Every keyword the schema uses (the names under properties and $defs are not keywords)."""
    found = set()
    for key, value in schema.items():
        found.add(key)
        if key in ("properties", "$defs"):
            for sub in value.values():
                found |= _keywords(sub)
        elif key not in ("const", "enum") and isinstance(value, dict):
            found |= _keywords(value)
    return found
