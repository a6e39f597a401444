"""Local-directory backend: the embedded default. A key is a relative path under the root folder.

Writes go to a temporary file beside the target and are renamed into place, so a reader
sees an object whole or not at all; `create` links the finished temporary file to its key,
which fails atomically if another writer got there first.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from prefloop_core.store.backend import ObjectInfo, Readable, Writable
from prefloop_core.store.streams import CHUNK

_PARTIAL = ".partial-"


class LocalBackend:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def _temp_beside(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.with_name(f"{_PARTIAL}{uuid.uuid4().hex}-{path.name}")

    def upload(self, key: str, source: Readable, size: int) -> None:
        path = self._path(key)
        tmp = self._temp_beside(path)
        try:
            with open(tmp, "wb") as out:
                remaining = size
                while remaining:
                    chunk = source.read(min(CHUNK, remaining))
                    if not chunk:
                        raise OSError(f"source ended {remaining} bytes early while writing {key}")
                    out.write(chunk)
                    remaining -= len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        tmp = self._temp_beside(path)
        try:
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def download(self, key: str, sink: Writable) -> None:
        try:
            with open(self._path(key), "rb") as src:
                shutil.copyfileobj(src, sink, CHUNK)
        except FileNotFoundError:
            raise KeyError(key) from None

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # Walk only the deepest folder the prefix names, then filter by the rest.
        folder = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not folder.is_dir():
            return
        found = []
        for dirpath, _dirs, names in os.walk(folder):
            for name in names:
                if name.startswith(_PARTIAL):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(self._info(key, path))
        yield from sorted(found, key=lambda info: info.key)

    def _info(self, key: str, path: Path) -> ObjectInfo:
        stat = path.stat()
        return ObjectInfo(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, timezone.utc))

    def partials(self) -> Iterator[ObjectInfo]:
        """The temporary files of writes that never finished (the writer was killed before its rename)."""
        for path in sorted(self.root.rglob(f"{_PARTIAL}*")):
            try:
                yield self._info(path.relative_to(self.root).as_posix(), path)
            except FileNotFoundError:  # its writer finished meanwhile
                continue

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Prune folders the deletion emptied, never the root.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()  # fails unless empty, which is what we want
            except OSError:
                break
            parent = parent.parent
