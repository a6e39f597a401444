"""A separate process that publishes one artifact: used to race, kill and measure publishers."""

from __future__ import annotations

import json
import threading
import sys
from pathlib import Path

from store_helpers import release

from prefloop_core.store import ArtifactConflict, ArtifactStore, LocalBackend
from prefloop_core.testing import make_s3_backend


def open_store(spec: dict[str, str]) -> ArtifactStore:
    if spec["kind"] == "local":
        return ArtifactStore(LocalBackend(Path(spec["root"])))
    return ArtifactStore(make_s3_backend(spec["endpoint"], spec["bucket"], part_size=16 * 1024 * 1024))


class PeakRss:
    """Samples this process's resident memory while it works. (ru_maxrss will not do: Linux keeps
    the parent's high-water mark across fork and exec, so a child would report pytest's peak.)"""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def stop_mb(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self._process.memory_info().rss) / 1024 / 1024


def main() -> None:
    spec = json.loads(sys.argv[1])
    rss = PeakRss()
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
    outcome["max_rss_mb"] = rss.stop_mb()
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
