"""Small HTTP calls to a (stand-in) ComfyUI."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def get_json(url: str, timeout: float = 2.0) -> Any:
    """GET `url` and decode its JSON body (urllib raises HTTPError for a status >= 400)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def post_json(url: str, timeout: float = 2.0) -> Any:
    """POST an empty body to `url` and decode its JSON answer."""
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)
