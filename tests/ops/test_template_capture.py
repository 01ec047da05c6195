"""What counts as a secret, and how settings files are captured without them."""

import json
from importlib import resources

import pytest

from comfy_init.layout import TEMPLATE_CAPTURED
from comfy_init.ops.template_capture import is_secret_key, scrub_ini, scrub_json, scrub_remote, scrub_url_text


@pytest.mark.parametrize("name", ["github_token", "CivitAI.ApiKey", "api_key", "OPENAI_APIKEY", "hf.key", "openaiKey",
                                  "civitai-key", "key", "password", "db_passwd", "client_secret", "auth", "AuthHeader",
                                  "aws_credentials"])
def test_secret_names(name):
    assert is_secret_key(name)


@pytest.mark.parametrize("name", ["Comfy.Keybinding.NewBindings", "keyboard_layout", "monkey", "Comfy.ColorPalette",
                                  "preview_method", "security_level", "Comfy.LinkRenderMode"])
def test_names_that_are_not_secrets(name):
    assert not is_secret_key(name)


def test_key_combinations_keep_their_key_but_not_a_token():
    data = json.dumps({"Comfy.Keybinding.NewBindings": [{"combo": {"key": "k"}, "token": "t"}], "x.key": "s"}).encode()
    stored, removed = scrub_json("user/default/comfy.settings.json", data)
    assert json.loads(stored) == {"Comfy.Keybinding.NewBindings": [{"combo": {"key": "k"}}]}
    assert removed == ["Comfy.Keybinding.NewBindings[0]/token", "x.key"]
    stored, removed = scrub_json("user/default/comfy.keybindings.json", b'[{"combo": {"key": "k"}}]')
    assert (stored, removed) == (b'[{"combo": {"key": "k"}}]', [])


def test_json_without_secrets_is_kept_byte_for_byte_and_bad_json_is_refused():
    original = b'{ "a" : 1 }'
    assert scrub_json("f.json", original) == (original, [])
    with pytest.raises(Exception) as raised:
        scrub_json("f.json", b"{nope")
    assert raised.value.exit_code == 65


def test_ini_drops_secret_lines_and_their_continuations_only():
    text = b"; head\n[default]\ngit_exe =\napi_key = abc\n  more-of-it\nchannel = https://u:p@h.invalid/c\n[other]\nx: 1\n"
    stored, removed = scrub_ini(text)
    assert stored == b"; head\n[default]\ngit_exe =\nchannel = https://h.invalid/c\n[other]\nx: 1\n"
    assert removed == ["[default] api_key", "[default] channel (URL credentials)"]


def test_urls_lose_their_credentials():
    assert scrub_remote("https://bob:tok@github.com/a/b.git") == ("https://github.com/a/b.git", True)
    assert scrub_remote("git@github.com:a/b.git") == ("git@github.com:a/b.git", False)
    assert scrub_remote("file:///srv/repo") == ("file:///srv/repo", False)
    assert scrub_url_text("--extra-index-url https://u:p@pypi.invalid/simple") == (
        "--extra-index-url https://pypi.invalid/simple", True)


def test_the_schema_allows_exactly_the_files_a_template_captures():
    schema = json.loads(resources.files("comfy_init.store").joinpath("template.schema.json").read_text())
    assert tuple(schema["properties"]["files"]["items"]["enum"]) == TEMPLATE_CAPTURED


def test_an_instances_own_secrets_are_put_back_in_their_section():
    from comfy_init.ops.template_capture import keep_own_secrets

    existing = b"top_token = t0\n[default]\ngithub_token = abc\n  continued\nx = 1\n[extra]\napi_key = k\n"
    merged, kept = keep_own_secrets("user/__manager/config.ini", existing, b"[default]\nx = 2")
    assert merged == b"top_token = t0\n[default]\ngithub_token = abc\n  continued\nx = 2\n[extra]\napi_key = k\n"
    assert kept == ["top_token", "[default] github_token", "[extra] api_key"]
    assert keep_own_secrets("user/__manager/config.ini", existing, existing) == (existing, [])
    assert keep_own_secrets("s.json", b"not json", b'{"a": 1}') == (b'{"a": 1}', [])
