from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_helpers import TOKENS, Collector, running_collector

from prefloop_collector.queue import ReviewQueue
from prefloop_collector.settings import CollectorSettings


@pytest.fixture
def settings(tmp_path: Path) -> CollectorSettings:
    return CollectorSettings(home=tmp_path / "home", collector_reviewers=TOKENS, collector_min_pairs=2)


@pytest.fixture
def queue(settings: CollectorSettings) -> ReviewQueue:
    return ReviewQueue(settings.db_path)


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    with running_collector(tmp_path) as service:
        yield service
