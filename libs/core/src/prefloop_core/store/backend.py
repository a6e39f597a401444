"""The few primitives a storage backend provides; everything else lives in `ArtifactStore`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime | None = None


class Backend(Protocol):
    """Object storage reduced to what publishing and fetching need.

    Keys are validated by the store before they reach a backend.
    """

    def describe(self) -> str:
        """Where the objects live, for messages: a folder or `s3://bucket` at an endpoint."""
        ...

    def upload(self, key: str, source: Readable, size: int) -> None:
        """Stream `size` bytes from `source` to `key`; the object appears whole or not at all."""
        ...

    def create(self, key: str, data: bytes) -> bool:
        """Write a small object only if `key` is absent; True if written, False if it existed."""
        ...

    def download(self, key: str, sink: Writable) -> None:
        """Stream the object's bytes into `sink`. Raises KeyError if it is absent."""
        ...

    def read(self, key: str) -> bytes | None:
        """A small object's bytes, or None if it is absent."""
        ...

    def size(self, key: str) -> int | None:
        """The object's size, or None if it is absent."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, in key order."""
        ...

    def delete(self, key: str) -> None:
        """Remove one object; absent is fine."""
        ...

    def partials(self) -> Iterator[ObjectInfo]:
        """What unfinished uploads left that `list` does not show (a killed writer's temporary files); `delete`
        removes one by its key."""
        ...
