from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import Server, build_bucket, slot_env, start_server, stop_server


@pytest.fixture(scope="session")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_bucket(tmp_path_factory.mktemp("releases"))


@pytest.fixture
def server(releases: dict[str, Path], tmp_path: Path) -> Iterator[Server]:
    """A running server with its own copy of the bucket (hard links: cheap), nothing deployed; its slots take
    SLOT_KEY, so a test can ask one directly."""
    bucket = tmp_path / "bucket"
    subprocess.run(["cp", "-al", str(releases["bucket"]), str(bucket)], check=True)
    shutil.copy(releases["template"], tmp_path / "template.json")
    server = start_server(tmp_path / "home", bucket, tmp_path / "template.json", env=slot_env())
    yield server
    stop_server(server)
