from __future__ import annotations

from collections.abc import Callable

import pytest

from prefloop_core.store import ArtifactStore


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, store_factory: Callable[[str], ArtifactStore]) -> ArtifactStore:
    """The same contract tests run against both backends."""
    return store_factory(request.param)
