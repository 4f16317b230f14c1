"""Shared pytest setup: tests marked ``slow`` need the real zoo weights and run only with WEAKLIFT_SLOW=1."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from weaklift.models.device import AUTO_DTYPE_ENV


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: needs real zoo weights; run with WEAKLIFT_SLOW=1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("WEAKLIFT_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set WEAKLIFT_SLOW=1 to run with the real zoo weights")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _auto_dtype_is_float32() -> Iterator[None]:
    """``dtype: auto`` resolves to float32 in tests, whatever this machine's CPU runs fast, so
    their numbers do not depend on the host; tests of bfloat16 name it explicitly. Session-wide,
    so module-scoped fixtures that load models see it too; an environment variable, so worker
    processes (Ray, torchrun) see it as well."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(AUTO_DTYPE_ENV, "float32")
        yield
