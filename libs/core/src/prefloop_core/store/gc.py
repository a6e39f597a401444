"""What killed publishes leave in the bucket, found and removed (`prefloop gc`).

A publish uploads an artifact's data objects first and writes its manifest last, each upload through a temporary
object renamed into place, so a publish killed part-way publishes nothing: readers never see its objects. They still
take space: temporary files of an upload that never finished (the local backend's `.partial-*`; on S3 the server
expires unfinished multipart uploads itself), and data objects of an artifact whose manifest was never written. Only
those older than a cut-off count, so a publish still under way is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from prefloop_core.contracts.common import ArtifactKind
from prefloop_core.store.artifacts import ArtifactStore
from prefloop_core.store.backend import ObjectInfo


@dataclass(frozen=True)
class Leftover:
    key: str
    size: int
    why: str


def leftovers(store: ArtifactStore, older_than: timedelta, now: datetime | None = None) -> list[Leftover]:
    """The leftovers of killed publishes last written before `now - older_than`."""
    cutoff = (now or datetime.now(timezone.utc)) - older_than

    def old(info: ObjectInfo) -> bool:
        return info.modified is None or info.modified <= cutoff

    found = [Leftover(i.key, i.size, "an upload that never finished") for i in store.backend.partials() if old(i)]
    data: dict[str, list[ObjectInfo]] = {}
    published: set[str] = set()
    for kind in ArtifactKind:
        for info in store.objects(f"{kind.value}/"):
            parts = info.key.split("/")
            if len(parts) < 3:
                continue
            artifact = "/".join(parts[:2])
            if parts[2] == "blobs":
                data.setdefault(artifact, []).append(info)
            else:
                published.add(artifact)
    for artifact, objects in sorted(data.items()):
        if artifact not in published and all(old(o) for o in objects):
            found += [Leftover(o.key, o.size, f"data of {artifact}, whose publish never finished (no manifest)") for o in objects]
    return found


def remove(store: ArtifactStore, found: list[Leftover]) -> None:
    for leftover in found:
        store.backend.delete(leftover.key)
