"""Test configuration: offline hub, GPU tests skipped without a GPU, one hypothesis profile for CI."""

from __future__ import annotations

import os

# A stray hub call must fail at once, not hang ~46 s: set before anything imports transformers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# pytest-xdist runs one worker per core; torch's own threads on top oversubscribe the cores and slow
# small-matrix kernels several-fold. One thread per worker (read by torch when it is first imported).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# CI: the same examples on every run (derandomize: the seed is a hash of each test) and no example
# database, so a failure saved by an earlier run in the same checkout cannot fail a later one; the
# only way to make CI fail is a defect those fixed examples reach. Local runs keep the random
# search (new examples every run, failures saved in .hypothesis/ and replayed first).
settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_collection_modifyitems(config, items):
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)
