"""Shared pytest setup: tests marked ``slow`` need the real zoo weights and run only with WEAKLIFT_SLOW=1."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: needs real zoo weights; run with WEAKLIFT_SLOW=1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("WEAKLIFT_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set WEAKLIFT_SLOW=1 to run with the real zoo weights")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
