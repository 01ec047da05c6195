"""The CLI in a test: click's CliRunner on the root group, with `--data`, and the JSON envelope
checked against its contract (the same keys for success and failure, exit code inside = outside)."""

import json

from click.testing import CliRunner

from comfy_init.cli.main import cli

ENVELOPE_KEYS = {"comfy_init_result", "command", "status", "exit_code", "data", "problems"}


def invoke(data, *args, input=None):
    return CliRunner().invoke(cli, [*args, "--data", str(data)], input=input)


def envelope(data, *args):
    result = invoke(data, *args, "--json")
    document = json.loads(result.output)
    assert set(document) == ENVELOPE_KEYS and document["exit_code"] == result.exit_code
    return document
