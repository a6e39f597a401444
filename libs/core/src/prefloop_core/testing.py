"""Pytest fixtures every part of prefloop can use (loaded through the `pytest11` entry point).

`s3_endpoint` starts a real HTTP S3 endpoint (moto's server) on a free loopback port for the
test session; `store_factory` makes a fresh store on either backend.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from prefloop_core.net import NotReady, free_port, stop_process, wait_until_ready
from prefloop_core.store import ArtifactStore, LocalBackend, S3Backend

S3_KEY = "testing"


def process_gone(pid: int, within_s: float = 10) -> bool:
    """Within `within_s`: no such process, or only its zombie (its parent died, and whoever adopted it may not reap it
    at once)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] == "Z":
                return True
        except (OSError, IndexError):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


S3_SECRET = "testing-secret"


def start_moto(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """moto's S3 server on 127.0.0.1:port, returned once it answers."""
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/moto-api/", 30, proc)
    except NotReady as exc:
        proc.kill()
        raise RuntimeError(f"{exc}: {log_path.read_text()[-2000:]}") from None
    return proc


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = start_moto(port, tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc, 10)


def new_bucket_name() -> str:
    return f"t-{uuid.uuid4().hex[:20]}"


def make_s3_backend(endpoint: str, bucket: str, **kwargs: object) -> S3Backend:
    return S3Backend(endpoint, bucket, S3_KEY, S3_SECRET, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], ArtifactStore]:
    """`store_factory("local")` or `store_factory("s3")`: a fresh, empty store."""

    def make(kind: str) -> ArtifactStore:
        if kind == "local":
            return ArtifactStore(LocalBackend(tmp_path / f"bucket-{uuid.uuid4().hex[:8]}"))
        endpoint = request.getfixturevalue("s3_endpoint")
        return ArtifactStore(make_s3_backend(endpoint, new_bucket_name(), part_size=5 * 1024 * 1024, backoff=0.05))

    return make
