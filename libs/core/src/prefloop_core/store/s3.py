"""S3 backend through the `minio` client: MinIO in compose, any S3 in production.

Transient faults (connection errors, 5xx, SlowDown) are retried with exponential backoff by
the urllib3 `Retry` policy the client is built with. Large objects go up as multipart uploads
of `part_size` bytes, with at most a few parts in memory at once, and come down as a stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import S3Error

from prefloop_core.store.backend import ObjectInfo, Readable, Writable
from prefloop_core.store.streams import CHUNK

_ABSENT = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}
_BUCKET_EXISTS = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


def http_client(retries: int, backoff: float = 0.5) -> urllib3.PoolManager:
    """Connection pool whose retry policy covers every method and the S3 throttling statuses."""
    policy = urllib3.Retry(
        total=retries,
        backoff_factor=backoff,
        backoff_max=20,
        status_forcelist=[500, 502, 503, 504],
        allowed_methods=None,  # PUT/POST too: parts are in memory and the manifest PUT is conditional
        respect_retry_after_header=True,
        raise_on_status=False,  # hand the final error response to minio, which names the S3 error
    )
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=10, read=300), maxsize=10, retries=policy)


class S3Backend:
    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str | None = None,
        part_size: int = 16 * 1024 * 1024,
        retries: int = 5,
        backoff: float = 0.5,
    ) -> None:
        url = urlparse(endpoint)
        self.endpoint = endpoint
        self.bucket = bucket
        self.part_size = part_size
        self.client = Minio(
            url.netloc,
            access_key=access_key,
            secret_key=secret_key,
            secure=url.scheme == "https",
            region=region,
            http_client=http_client(retries, backoff),
        )
        self._bucket_ready = False

    def describe(self) -> str:
        return f"s3://{self.bucket} at {self.endpoint}"

    def _ensure_bucket(self) -> None:
        """Create the bucket on first use; a bucket created meanwhile by someone else is fine."""
        if self._bucket_ready:
            return
        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as exc:
                if exc.code not in _BUCKET_EXISTS:
                    raise
        self._bucket_ready = True

    def upload(self, key: str, source: Readable, size: int) -> None:
        self._ensure_bucket()
        # On any failure minio aborts the multipart upload, so no partial object appears.
        # minio only calls read() on it (typed BinaryIO there).
        self.client.put_object(self.bucket, key, source, length=size, part_size=self.part_size)  # type: ignore[arg-type]

    def create(self, key: str, data: bytes) -> bool:
        """Conditional write with `If-None-Match: *` (S3, MinIO and moto answer 412 if the key exists).

        minio-py's public `put_object` cannot send that header (it would become user metadata),
        so this calls its `_put_object`, the single-request PutObject; minio is pinned for it and
        the race test in libs/core/tests/test_store_contract.py guards it over the wire.
        """
        self._ensure_bucket()
        try:
            self.client._put_object(  # noqa: SLF001 - see docstring
                self.bucket,
                key,
                data,
                headers={"If-None-Match": "*", "Content-Type": "application/json"},
            )
        except S3Error as exc:
            if exc.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def download(self, key: str, sink: Writable) -> None:
        self._ensure_bucket()
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _ABSENT:
                raise KeyError(key) from None
            raise
        try:
            for chunk in response.stream(CHUNK):
                sink.write(chunk)
        finally:
            response.close()
            response.release_conn()

    def read(self, key: str) -> bytes | None:
        self._ensure_bucket()
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _ABSENT:
                return None
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def size(self, key: str) -> int | None:
        self._ensure_bucket()
        try:
            return self.client.stat_object(self.bucket, key).size
        except S3Error as exc:
            if exc.code in _ABSENT:
                return None
            raise

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        self._ensure_bucket()
        for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
            yield ObjectInfo(obj.object_name, obj.size or 0, obj.last_modified)

    def partials(self) -> Iterator[ObjectInfo]:
        """None to list: a failed upload is aborted by minio, and a killed one's parts are expired by the server
        (MinIO removes multipart uploads left for 24 h by default; on AWS S3 a lifecycle rule with
        AbortIncompleteMultipartUpload does it). They never become objects."""
        return iter(())

    def delete(self, key: str) -> None:
        self._ensure_bucket()
        self.client.remove_object(self.bucket, key)
