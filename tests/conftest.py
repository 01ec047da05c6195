import os

import pytest


@pytest.fixture
def base_env(tmp_path):
    """A minimal multi-instance environment on a fresh data directory, with the stand-in checkout."""
    from tests.support.standin import STANDIN_DIR

    return {
        "COMFY_MULTI_INSTANCE": "true",
        "COMFY_INSTANCE_ID": "core-1",
        "COMFY_DATA_DIRECTORY": str(tmp_path / "data"),
        "COMFY_APP_DIRECTORY": str(STANDIN_DIR),
        "COMFY_DEVICE": "cpu",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
