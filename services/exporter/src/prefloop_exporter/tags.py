"""Release tags: `<base-short>-<method>-<YYYYMMDD>-<n>` for trained releases, `<base-short>-base-<quant>` for bases."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from prefloop_core.contracts import ExportMode, Quantization, Release, TrainingRun
from prefloop_core.ids import release_tag
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore
from prefloop_core.toolchain import SMOLLM2_FILE, base_gguf


def base_short(base: str, settings: Settings) -> str:
    """A short, tag-safe name for the model the base holds: `smollm2` (the embedded default) -> `smollm2-135m`, or
    the stem of the GGUF `PREFLOOP_BASE_GGUF` puts in its place; a path -> its stem."""
    if base == "smollm2":
        gguf = base_gguf(settings)
        if gguf.name == SMOLLM2_FILE:
            return "smollm2-135m"
        base = str(gguf)
    stem = Path(base.rstrip("/")).name.removesuffix(".gguf")
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40] or "model"


def base_release_tag(base: str, quant: Quantization, settings: Settings) -> str:
    return f"{base_short(base, settings)}-base-{quant.value.lower()}"


def _short_and_method(run: TrainingRun, settings: Settings) -> tuple[str, str]:
    return base_short(run.base_model, settings), run.method.value.replace("+", "-")


def next_tag(store: ArtifactStore, run: TrainingRun, day: datetime, settings: Settings) -> str:
    return next_free_tag(store, *_short_and_method(run, settings), day)


def next_free_tag(store: ArtifactStore, short: str, method: str, day: datetime) -> str:
    """`<short>-<method>-<YYYYMMDD>-<n>` with the next `n` no release of that day has (tags are never reused)."""
    taken = [
        int(t.rsplit("-", 1)[1])
        for t in store.ids(Release, prefix=f"{short}-{method}-{day:%Y%m%d}-")
        if t.rsplit("-", 1)[1].isdigit()
    ]
    return release_tag(short, method, day, max(taken, default=0) + 1)


def release_of(
    store: ArtifactStore, run: TrainingRun, mode: ExportMode, quants: list[Quantization], settings: Settings
) -> Release | None:
    """The newest release that already holds `run` exported in `mode` with every quantization in `quants`: a run's
    releases carry its base's short name and its method in their tags, so only those are read."""
    short, method = _short_and_method(run, settings)
    held = [
        release
        for tag in store.ids(Release, prefix=f"{short}-{method}-")
        if (release := store.get(Release, tag)) is not None
        and release.run_id == run.run_id
        and release.mode is mode
        and set(quants) <= set(release.quantizations)
    ]
    return max(held, key=lambda release: release.created_at, default=None)
