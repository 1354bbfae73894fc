from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

# CI explores the same examples every run (a failure there is reproducible from its log);
# local runs explore new random examples each time and remember failures in .hypothesis/.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261128)
