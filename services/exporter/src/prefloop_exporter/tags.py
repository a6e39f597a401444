"""Release tags: `<base-short>-<method>-<YYYYMMDD>-<n>` for trained releases, `<base-short>-base-<quant>` for bases."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from prefloop_core.contracts import Quantization, Release, TrainingRun
from prefloop_core.ids import release_tag
from prefloop_core.store import ArtifactStore


def base_short(base: str) -> str:
    """A short, tag-safe name for the base: `smollm2` -> `smollm2-135m`, a path -> its stem."""
    if base == "smollm2":
        return "smollm2-135m"
    stem = Path(base.rstrip("/")).name.removesuffix(".gguf")
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40] or "model"


def base_release_tag(base: str, quant: Quantization) -> str:
    return f"{base_short(base)}-base-{quant.value.lower()}"


def next_tag(store: ArtifactStore, run: TrainingRun, day: datetime) -> str:
    method = run.method.value.replace("+", "-")
    prefix = f"{base_short(run.base_model)}-{method}-{day:%Y%m%d}-"
    taken = [int(t.rsplit("-", 1)[1]) for t in store.ids(Release, prefix=prefix) if t.rsplit("-", 1)[1].isdigit()]
    return release_tag(base_short(run.base_model), method, day, max(taken, default=0) + 1)
