"""Fixtures for the PID 1 tests: an instance's files, and comfy-init runs that never outlive a test."""

import pytest
from tests.support.pid1 import ComfyInit, Setup, namespace_problem


@pytest.fixture(scope="session")
def pid_namespace():
    """Skip the test, saying why, when this machine cannot make a PID namespace."""
    problem = namespace_problem()
    if problem is not None:
        pytest.skip(problem)


@pytest.fixture
def setup(tmp_path):
    return Setup(tmp_path)


@pytest.fixture
def launch(tmp_path):
    """launch(env, namespace=True, **popen_kwargs) -> a started ComfyInit; killed at teardown."""
    runs = []

    def start(env, *, namespace=True, name=None, **kwargs):
        run = ComfyInit(env, tmp_path, namespace=namespace, name=name or f"comfy-init-{len(runs)}", **kwargs)
        runs.append(run)
        return run.start()

    yield start
    for run in runs:
        run.kill()
