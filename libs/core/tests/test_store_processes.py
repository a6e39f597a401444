"""The store across processes: racing publishers, a publisher killed mid-upload, memory on a 1 GB file."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from store_helpers import release, write

from prefloop_core.contracts import Release
from prefloop_core.store import ArtifactStore, IntegrityError, LocalBackend, S3Backend
from prefloop_core.store.gc import leftovers, remove

HERE = Path(__file__).parent


def spec_for(store: ArtifactStore, **extra: object) -> dict[str, object]:
    backend = store.backend
    if isinstance(backend, LocalBackend):
        return {"kind": "local", "root": str(backend.root), **extra}
    assert isinstance(backend, S3Backend)
    return {"kind": "s3", "endpoint": backend.endpoint, "bucket": backend.bucket, **extra}


def publisher(spec: dict[str, object]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "publisher.py"), json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(HERE)},
    )


def outcome(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def sparse_file(path: Path, size: int, tail: bytes) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size - len(tail))
        fh.seek(size - len(tail))
        fh.write(tail)
    return path


def test_two_processes_publishing_the_same_new_tag_exactly_one_wins(store: ArtifactStore, tmp_path: Path) -> None:
    for round_ in range(3):
        tag = f"tiny-dpo-20261123-{round_ + 1}"
        files = [write(tmp_path / f"r{round_}-{i}.gguf", f"content of writer {i}".encode() * 1000) for i in range(2)]
        start_at = time.time() + 1.5  # both interpreters are up by then
        procs = [publisher(spec_for(store, tag=tag, file=str(f), start_at=start_at)) for f in files]
        results = [outcome(p) for p in procs]

        assert sorted(r["result"] for r in results) == ["conflict", "published"], results
        loser = next(r for r in results if r["result"] == "conflict")
        assert "already published with other content" in str(loser["message"])
        winner_file = files[[r["result"] for r in results].index("published")]
        published = store.require(Release, tag)
        fetched = store.fetch(published, tmp_path / f"out{round_}")["model.gguf"]
        assert fetched.read_bytes() == winner_file.read_bytes()


def test_a_publisher_killed_mid_upload_publishes_nothing(store: ArtifactStore, tmp_path: Path) -> None:
    big = sparse_file(tmp_path / "big.gguf", 600 * 1024 * 1024, b"end")
    proc = publisher(spec_for(store, tag="tiny-dpo-20261123-1", file=str(big)))
    upload_started = _upload_started_probe(store)
    deadline = time.monotonic() + 120
    while not upload_started() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    assert upload_started(), "the upload never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    assert store.get(Release, "tiny-dpo-20261123-1") is None
    assert store.ids(Release) == []
    # What it left (locally the upload's temporary file; on S3 nothing the server does not expire itself) is found by
    # `prefloop gc` once old enough, and removed.
    left = leftovers(store, timedelta(0))
    if isinstance(store.backend, LocalBackend):
        assert [x.why for x in left] == ["an upload that never finished"] and left[0].size > 0
        assert leftovers(store, timedelta(hours=1)) == []  # younger than the cut-off: maybe a publish under way
    remove(store, left)
    assert leftovers(store, timedelta(0)) == [] and not list(store.backend.partials())
    # The id is still free: a new publish of the same tag goes through.
    small = write(tmp_path / "small.gguf", b"after the crash")
    published = store.publish(release("tiny-dpo-20261123-1"), {"model.gguf": small})
    assert store.fetch(published, tmp_path / "out")["model.gguf"].read_bytes() == b"after the crash"
    assert leftovers(store, timedelta(0)) == []  # published: nothing of it is a leftover


def test_data_of_a_publish_killed_before_its_manifest_is_a_leftover(store: ArtifactStore, tmp_path: Path) -> None:
    kept = store.publish(release("tiny-dpo-20261123-1"), {"model.gguf": write(tmp_path / "a.gguf", b"published")})
    orphan = store.blob_key(Release, "tiny-dpo-20261123-2", "model.gguf", "0" * 64)
    store.backend.upload(orphan, io.BytesIO(b"never published"), 15)  # what a publish killed after its upload leaves
    assert [(x.key, x.size) for x in leftovers(store, timedelta(0))] == [(orphan, 15)]
    assert "models/tiny-dpo-20261123-2, whose publish never finished" in leftovers(store, timedelta(0))[0].why
    remove(store, leftovers(store, timedelta(0)))
    assert store.backend.size(orphan) is None and leftovers(store, timedelta(0)) == []
    assert store.fetch(kept, tmp_path / "out")["model.gguf"].read_bytes() == b"published"


def _upload_started_probe(store: ArtifactStore) -> Callable[[], bool]:
    backend = store.backend
    if isinstance(backend, LocalBackend):
        # The local backend writes into a '.partial-' file beside the blob's key. The upload has started once bytes are
        # in it: the file exists, empty, for a moment before the first write (a kill then leaves a 0-byte leftover).
        def partial_has_bytes() -> bool:
            for p in backend.root.rglob(".partial-*"):
                try:
                    if p.stat().st_size > 0:
                        return True
                except FileNotFoundError:  # renamed into place between the listing and the stat
                    pass
            return False

        return partial_has_bytes
    assert isinstance(backend, S3Backend)

    def multipart_in_progress() -> bool:
        try:
            result = backend.client._list_multipart_uploads(backend.bucket)  # noqa: SLF001 - test probe
        except Exception:  # the bucket may not exist yet
            return False
        return bool(list(result.uploads))

    return multipart_in_progress


def test_a_1gb_file_streams_up_and_down_with_flat_memory(store: ArtifactStore, tmp_path: Path) -> None:
    size = 1024 * 1024 * 1024
    big = sparse_file(tmp_path / "big.gguf", size, b"the end of a big model")
    proc = publisher(spec_for(store, tag="big-dpo-20261123-1", file=str(big), fetch_to=str(tmp_path / "out")))
    result = outcome(proc)

    assert result["result"] == "published"
    fetched = tmp_path / "out" / "model.gguf"
    assert fetched.stat().st_size == size
    with open(fetched, "rb") as fh:
        fh.seek(size - 22)
        assert fh.read() == b"the end of a big model"
    # Peak RSS of the whole publishing process, interpreter and client included, for a 1 GiB file.
    assert float(result["max_rss_mb"]) < 250, result


def test_a_source_truncated_during_upload_publishes_nothing(store: ArtifactStore, tmp_path: Path) -> None:
    """The file shrinks after it was hashed (a writer still at work): the upload is refused."""
    import threading

    big = sparse_file(tmp_path / "big.gguf", 300 * 1024 * 1024, b"end")
    upload_started = _upload_started_probe(store)

    def truncate_once_uploading() -> None:
        deadline = time.monotonic() + 60
        while not upload_started() and time.monotonic() < deadline:
            time.sleep(0.005)
        os.truncate(big, 1024)

    cutter = threading.Thread(target=truncate_once_uploading)
    cutter.start()
    try:
        with pytest.raises(IntegrityError, match="nothing was published|failed"):
            store.publish(release(), {"model.gguf": big})
    finally:
        cutter.join()
    assert store.get(Release, release().tag) is None
