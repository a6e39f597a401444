"""A separate process that publishes one artifact: used to race, kill and measure publishers."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from store_helpers import release

from prefloop_core.store import ArtifactConflict, ArtifactStore, LocalBackend
from prefloop_core.testing import make_s3_backend


def open_store(spec: dict[str, str]) -> ArtifactStore:
    if spec["kind"] == "local":
        return ArtifactStore(LocalBackend(Path(spec["root"])))
    return ArtifactStore(make_s3_backend(spec["endpoint"], spec["bucket"], part_size=16 * 1024 * 1024))


def main() -> None:
    spec = json.loads(sys.argv[1])
    store = open_store(spec)
    source = Path(spec["file"])
    if "start_at" in spec:  # line up racing publishers on a wall-clock instant
        import time

        time.sleep(max(0.0, float(spec["start_at"]) - time.time()))
    outcome: dict[str, object] = {}
    try:
        published = store.publish(release(spec["tag"]), {"model.gguf": source})
        outcome["result"] = "published"
        if spec.get("fetch_to"):
            store.fetch(published, Path(spec["fetch_to"]))
    except ArtifactConflict as exc:
        outcome["result"] = "conflict"
        outcome["message"] = str(exc)
    outcome["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
