"""The artifact store: publish immutable artifacts, read them back verified.

Layout of one artifact in the bucket (the only place keys are built):

    <kind>/<id>/<manifest_name>                 written last, only if absent
    <kind>/<id>/blobs/<sha256>/<file name>      data objects, content-addressed

Data objects are keyed by their content, so a publish that crashed half-way or lost a race
never leaves a different file under a key another manifest points to; the manifest is
created with a conditional write, so exactly one publisher of a new id wins. Re-publishing
the same content is a no-op; different content under a taken id is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from prefloop_core.contracts.common import Artifact, ArtifactKind, StoredFile
from prefloop_core.contracts.releases import ReleaseHistoryEntry
from prefloop_core.ids import check_safe_id
from prefloop_core.store.backend import Backend, ObjectInfo
from prefloop_core.store.errors import (
    ArtifactConflict,
    ArtifactNotFound,
    IntegrityError,
    InvalidKey,
    StoreError,
)
from prefloop_core.store.streams import HashingReader, HashingWriter, file_digest

A = TypeVar("A", bound=Artifact)
M = TypeVar("M", bound=BaseModel)


def _parse(cls: type[M], key: str, data: bytes) -> M:
    """A stored record, or a StoreError naming the object. Fields this version does not know most likely mean a newer
    prefloop wrote it (contracts forbid unknown fields so that a typo is never silently dropped): the message says so."""
    try:
        return cls.model_validate_json(data)
    except ValidationError as exc:
        unknown = [".".join(map(str, e["loc"])) for e in exc.errors() if e["type"] == "extra_forbidden"]
        if unknown and len(unknown) == exc.error_count():
            raise StoreError(
                f"{key} has field(s) this prefloop does not know: {', '.join(unknown)}; most likely a "
                "newer prefloop wrote it. Run the same prefloop version in every service and job "
                "(upgrade this one)"
            ) from exc
        raise StoreError(f"{key}: manifest does not match {cls.__name__}: {exc}") from exc


_NAME_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+=-]{0,199}$")


def check_file_name(name: str) -> str:
    """A file name inside an artifact: `/`-separated segments, none empty, hidden or `..`."""
    segments = name.split("/")
    if not name or len(name) > 1000 or any(not _NAME_SEGMENT.fullmatch(s) or ".." in s for s in segments):
        raise InvalidKey(
            f"{name!r} is not a valid file name inside an artifact: use '/'-separated parts of "
            "letters, digits and '._+=-', each starting with a letter, digit or '_'"
        )
    return name


class ArtifactStore:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def __repr__(self) -> str:
        return f"ArtifactStore({self.backend.describe()})"

    # -- keys: built here and nowhere else -------------------------------------------------

    @staticmethod
    def prefix(kind: ArtifactKind, artifact_id: str) -> str:
        return f"{kind.value}/{check_safe_id(artifact_id)}"

    def manifest_key(self, cls: type[Artifact], artifact_id: str) -> str:
        return f"{self.prefix(cls.kind, artifact_id)}/{cls.manifest_name}"

    def blob_key(self, cls: type[Artifact], artifact_id: str, name: str, sha256: str) -> str:
        return f"{self.prefix(cls.kind, artifact_id)}/blobs/{sha256}/{check_file_name(name)}"

    # -- publishing -------------------------------------------------------------------------

    def publish(self, artifact: A, files: Mapping[str, Path]) -> A:
        """Upload `files` (name -> local path), then write the manifest; return what is published.

        Raises ArtifactConflict if the id holds different content. Nothing is visible to readers
        until the manifest is written, so a publish that fails or is killed publishes nothing.
        """
        cls = type(artifact)
        artifact_id = artifact.artifact_id
        stored: dict[str, StoredFile] = {}
        for name, path in sorted(files.items()):
            sha256, size = file_digest(Path(path))
            stored[name] = StoredFile(key=self.blob_key(cls, artifact_id, name, sha256), sha256=sha256, size=size)
        candidate = artifact.model_copy(update={"files": stored, "published_at": None})

        existing = self.get(cls, artifact_id)
        if existing is not None:
            return self._same_or_conflict(existing, candidate)

        for name, entry in stored.items():
            if self.backend.size(entry.key) == entry.size:
                continue  # content-addressed: already uploaded by an earlier attempt
            self._upload_verified(Path(files[name]), entry)

        manifest = candidate.model_copy(update={"published_at": datetime.now(timezone.utc)})
        body = manifest.model_dump_json(indent=2).encode()
        if self.backend.create(self.manifest_key(cls, artifact_id), body):
            return manifest
        winner = self.get(cls, artifact_id)
        if winner is None:  # pragma: no cover - the manifest vanished between create and read
            raise StoreError(f"{cls.kind.value}/{artifact_id}: manifest exists but cannot be read")
        return self._same_or_conflict(winner, candidate)

    def _upload_verified(self, path: Path, entry: StoredFile) -> None:
        with open(path, "rb") as raw:
            reader = HashingReader(raw)
            try:
                self.backend.upload(entry.key, reader, entry.size)
            except OSError as exc:
                raise IntegrityError(f"upload of {path} to {entry.key} failed: {exc}") from exc
        if reader.size != entry.size or reader.sha256.hexdigest() != entry.sha256:
            self.backend.delete(entry.key)
            raise IntegrityError(
                f"{path} changed while it was uploaded to {entry.key} "
                f"(expected {entry.size} bytes sha256 {entry.sha256[:12]}…, sent {reader.size} bytes "
                f"sha256 {reader.sha256.hexdigest()[:12]}…); nothing was published"
            )
        stored_size = self.backend.size(entry.key)
        if stored_size != entry.size:
            self.backend.delete(entry.key)
            raise IntegrityError(f"{entry.key}: stored {stored_size} bytes, expected {entry.size}; nothing was published")

    @staticmethod
    def _same_or_conflict(existing: A, candidate: A) -> A:
        if existing.content_fingerprint() == candidate.content_fingerprint():
            return existing
        old = {name: entry.sha256 for name, entry in existing.files.items()}
        new = {name: entry.sha256 for name, entry in candidate.files.items()}
        differing = sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))
        what = f"files differ: {', '.join(differing)}" if differing else "metadata differs"
        raise ArtifactConflict(
            f"{existing.kind.value}/{existing.artifact_id} is already published with other content "
            f"({what}); published ids are immutable: publish under a new id"
        )

    # -- reading ----------------------------------------------------------------------------

    def get(self, cls: type[A], artifact_id: str) -> A | None:
        """The published manifest of `artifact_id`, or None if it is not (yet) published."""
        key = self.manifest_key(cls, artifact_id)
        data = self.backend.read(key)
        if data is None:
            return None
        manifest = _parse(cls, key, data)
        if manifest.artifact_id != artifact_id:
            raise StoreError(f"{key}: manifest names id {manifest.artifact_id!r}, expected {artifact_id!r}")
        return manifest

    def require(self, cls: type[A], artifact_id: str) -> A:
        found = self.get(cls, artifact_id)
        if found is None:
            raise ArtifactNotFound(f"{cls.kind.value}/{artifact_id} is not published in {self.backend.describe()}")
        return found

    def ids(self, cls: type[Artifact], prefix: str = "") -> list[str]:
        """Published ids of a kind (those with a manifest), sorted, optionally by id prefix."""
        found = []
        for info in self.backend.list(f"{cls.kind.value}/{prefix}"):
            parts = info.key.split("/")
            if len(parts) == 3 and parts[2] == cls.manifest_name:
                found.append(parts[1])
        return found

    def objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under a key prefix, manifests and data alike."""
        return self.backend.list(prefix)

    def fetch(self, artifact: Artifact, dest: Path, names: list[str] | None = None) -> dict[str, Path]:
        """Download files of a published artifact into `dest`, verifying size and sha256 of each.

        A file already in `dest` with the right hash is not downloaded again. A mismatch raises
        IntegrityError naming the key and leaves nothing behind in `dest`.
        """
        wanted = names if names is not None else sorted(artifact.files)
        result: dict[str, Path] = {}
        for name in wanted:
            entry = artifact.files.get(name)
            if entry is None:
                raise ArtifactNotFound(f"{artifact.kind.value}/{artifact.artifact_id} has no file {name!r}")
            target = dest / check_file_name(name)
            if not (target.is_file() and file_digest(target) == (entry.sha256, entry.size)):
                self._download_verified(entry, target)
            result[name] = target
        return result

    def _download_verified(self, entry: StoredFile, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            with open(tmp, "wb") as raw:
                writer = HashingWriter(raw)
                try:
                    self.backend.download(entry.key, writer)
                except KeyError:
                    raise IntegrityError(f"{entry.key}: object is missing from the bucket") from None
            self._check(entry, writer.size, writer.sha256.hexdigest())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def read_bytes(self, artifact: Artifact, name: str) -> bytes:
        """A small file of a published artifact, verified."""
        entry = artifact.files.get(name)
        if entry is None:
            raise ArtifactNotFound(f"{artifact.kind.value}/{artifact.artifact_id} has no file {name!r}")
        data = self.backend.read(entry.key)
        if data is None:
            raise IntegrityError(f"{entry.key}: object is missing from the bucket")
        self._check(entry, len(data), hashlib.sha256(data).hexdigest())
        return data

    @staticmethod
    def _check(entry: StoredFile, size: int, sha256: str) -> None:
        if size != entry.size:
            raise IntegrityError(
                f"{entry.key}: got {size} bytes, the manifest records {entry.size} (truncated or replaced object)"
            )
        if sha256 != entry.sha256:
            raise IntegrityError(f"{entry.key}: sha256 {sha256} does not match the manifest's {entry.sha256} (corrupted object)")

    # -- release history: an append-only log of immutable entries ------------------------------

    HISTORY_PREFIX = "releases/history/"

    def append_history(self, entry: ReleaseHistoryEntry) -> str:
        """Add one entry; entries are never rewritten, so concurrent writers cannot lose each other's."""
        key = f"{self.HISTORY_PREFIX}{entry.at:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:8]}.json"
        if not self.backend.create(key, entry.model_dump_json().encode()):  # pragma: no cover - uuid collision
            raise StoreError(f"{key} exists already")
        return key

    def history(self) -> list[ReleaseHistoryEntry]:
        """Every history entry, oldest first."""
        entries = []
        for info in self.backend.list(self.HISTORY_PREFIX):
            data = self.backend.read(info.key)
            if data is not None:
                entries.append(_parse(ReleaseHistoryEntry, info.key, data))
        return entries

    # -- deleting ---------------------------------------------------------------------------

    def delete(self, cls: type[Artifact], artifact_id: str) -> int:
        """Unpublish an artifact and remove its objects (manifest first); returns objects removed."""
        prefix = self.prefix(cls.kind, artifact_id) + "/"
        manifest_key = self.manifest_key(cls, artifact_id)
        keys = [info.key for info in self.backend.list(prefix)]
        if manifest_key in keys:
            self.backend.delete(manifest_key)
        for key in keys:
            if key != manifest_key:
                self.backend.delete(key)
        return len(keys)
