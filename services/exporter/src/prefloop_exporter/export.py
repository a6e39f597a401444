"""The export recipe: run -> merged HF model -> f16 GGUF -> quantized GGUF(s) -> a tagged release.

Tags are `<base-short>-<method>-<YYYYMMDD>-<n>` and immutable. Temporary space is freed on
success and on failure.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from prefloop_core.contracts import DatasetManifest, ExportMode, Quantization, Release, TrainingRun
from prefloop_core.ids import release_tag
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore
from prefloop_core.toolchain import llama_cpp
from prefloop_exporter.gguf_tools import convert_to_f16, quantize
from prefloop_exporter.merge import merge_run


def base_short(base: str) -> str:
    """A short, tag-safe name for the base: `smollm2` -> `smollm2-135m`, a path -> its stem."""
    if base == "smollm2":
        return "smollm2-135m"
    stem = Path(base.rstrip("/")).name.removesuffix(".gguf")
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40] or "model"


def next_tag(store: ArtifactStore, run: TrainingRun, day: datetime) -> str:
    method = run.method.value.replace("+", "-")
    prefix = f"{base_short(run.base_model)}-{method}-{day:%Y%m%d}-"
    taken = [int(t.rsplit("-", 1)[1]) for t in store.ids(Release, prefix=prefix) if t.rsplit("-", 1)[1].isdigit()]
    return release_tag(base_short(run.base_model), method, day, max(taken, default=0) + 1)


def export(run_id: str, quants: list[Quantization], settings: Settings, store: ArtifactStore,
           out: TextIO = sys.stdout) -> Release:
    run = store.require(TrainingRun, run_id)
    tools = llama_cpp(settings)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"prefloop-export-{run_id}-"))
    try:
        print(f"[export 1/3] merging {run_id}'s adapter into {run.base_model} (fp32)", file=out, flush=True)
        merged = merge_run(run, store, settings, work)
        print("[export 2/3] converting to f16 GGUF with llama.cpp's convert_hf_to_gguf.py", file=out, flush=True)
        f16 = convert_to_f16(tools, merged, work / "model-F16.gguf")
        files: dict[str, Path] = {}
        for quant in quants:
            target = work / f"model-{quant.value}.gguf"
            files[target.name] = f16 if quant is Quantization.F16 else quantize(tools, f16, target, quant)
            print(f"[export 3/3] {quant.value}: {files[target.name].stat().st_size / 1e6:.1f} MB", file=out, flush=True)
        dataset = store.get(DatasetManifest, run.dataset_id)
        now = datetime.now(timezone.utc)
        release = Release(
            tag=next_tag(store, run, now), base_model=run.base_model, mode=ExportMode.MERGED, quantizations=quants,
            dataset_id=run.dataset_id, run_id=run.run_id, llama_cpp_version=tools.version,
            pairs=dataset.pair_count if dataset else None, created_at=now,
        )
        published = store.publish(release, files)
        print(f"release {published.tag} published in {time.monotonic() - started:.0f} s", file=out, flush=True)
        return published
    finally:
        shutil.rmtree(work, ignore_errors=True)
