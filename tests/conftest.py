"""Hypothesis profiles and the fixtures shared by the tests (helpers live in ``helpers.py``)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from helpers import BACKENDS, Backend, make_backend

# CI: derandomized, no deadline, 200 examples per property. "dev": more examples, random seeds.
settings.register_profile(
    "ci", max_examples=200, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=500, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fast", max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=BACKENDS, scope="session")
def backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request.param)


@pytest.fixture
def two_torch_threads():
    """Torch limited to two threads for the test (the SOLOv2 tests' CPU budget), restored afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(min(2, previous))
    yield
    torch.set_num_threads(previous)
