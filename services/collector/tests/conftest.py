from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_helpers import TOKENS, Collector, collector_env

from prefloop_core.net import NotReady, free_port, wait_until_ready
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
    """The real collector service (`prefloop-collector review --web`) on a free loopback port."""
    home = tmp_path / "home"
    port = free_port()
    exe = str(Path(sys.executable).parent / "prefloop-collector")
    log = open(tmp_path / "collector.log", "wb")
    proc = subprocess.Popen(
        [exe, "review", "--web", "--port", str(port)], env=collector_env(home), stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/health", 30, proc)
    except NotReady as exc:
        raise RuntimeError(f"{exc}: {(tmp_path / 'collector.log').read_text()}") from None
    try:
        yield Collector(url, home, ReviewQueue(CollectorSettings(home=home).db_path))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
