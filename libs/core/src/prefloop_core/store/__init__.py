"""The artifact store: one interface (`ArtifactStore`), two backends (local folder, S3)."""

from __future__ import annotations

from prefloop_core.settings import Settings, StoreBackend
from prefloop_core.store.artifacts import ArtifactStore, check_file_name
from prefloop_core.store.backend import Backend, ObjectInfo
from prefloop_core.store.errors import (
    ArtifactConflict,
    ArtifactNotFound,
    IntegrityError,
    InvalidKey,
    StoreError,
)
from prefloop_core.store.local import LocalBackend
from prefloop_core.store.s3 import S3Backend


def open_store(settings: Settings) -> ArtifactStore:
    """The store the settings describe."""
    if settings.store_backend is StoreBackend.S3:
        assert settings.s3_endpoint and settings.s3_access_key and settings.s3_secret_key  # validated
        backend: Backend = S3Backend(
            endpoint=settings.s3_endpoint,
            bucket=settings.s3_bucket,
            access_key=settings.s3_access_key.get_secret_value(),
            secret_key=settings.s3_secret_key.get_secret_value(),
            region=settings.s3_region,
            part_size=settings.s3_part_size_mb * 1024 * 1024,
            retries=settings.s3_retries,
        )
    else:
        backend = LocalBackend(settings.bucket_dir)
    return ArtifactStore(backend)


__all__ = [
    "ArtifactConflict",
    "ArtifactNotFound",
    "ArtifactStore",
    "Backend",
    "IntegrityError",
    "InvalidKey",
    "LocalBackend",
    "ObjectInfo",
    "S3Backend",
    "StoreError",
    "check_file_name",
    "open_store",
]
