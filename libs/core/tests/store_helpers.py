"""Helpers for the store tests: artifacts to publish, and raw access to corrupt a stored object."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

from prefloop_core.contracts import DatasetManifest, ExportMode, Release
from prefloop_core.store import ArtifactStore, LocalBackend, S3Backend


def release(tag: str = "tiny-dpo-20261123-1", **extra: object) -> Release:
    fields: dict[str, object] = {"base_model": "tiny", "mode": ExportMode.MERGED, **extra}
    return Release(tag=tag, created_at=datetime.now(timezone.utc), **fields)


def dataset(dataset_id: str = "ds-0123456789abcdef", pair_count: int = 2) -> DatasetManifest:
    return DatasetManifest(dataset_id=dataset_id, created_at=datetime.now(timezone.utc), pair_count=pair_count)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def replace_raw(store: ArtifactStore, key: str, data: bytes) -> None:
    """Overwrite a stored object behind the store's back, as disk rot or a bad copy would."""
    backend = store.backend
    if isinstance(backend, LocalBackend):
        (backend.root / key).write_bytes(data)
    else:
        assert isinstance(backend, S3Backend)
        backend.client.put_object(backend.bucket, key, io.BytesIO(data), len(data))


def read_raw(store: ArtifactStore, key: str) -> bytes:
    data = store.backend.read(key)
    assert data is not None, key
    return data
