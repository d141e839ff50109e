"""Test-session set-up shared by every test module."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Set TensorFlow up as every training job does (1 thread, CPU, deterministic ops).

    TensorFlow takes these settings only before it first runs an operation, so
    they are fixed here, before any test builds a model: otherwise the first
    test to touch TensorFlow would decide them for all the others.
    """
    from regbench.training import configure_tensorflow

    configure_tensorflow(1, "cpu")
