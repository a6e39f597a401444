"""Free temporary space, checked against the export's expected file sizes before any work starts."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from prefloop_core.contracts import ExportMode, Quantization, Release
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore
from prefloop_exporter.tags import base_release_tag
from prefloop_ml.base_model import hf_checkpoint

# Bits per weight of each file type (llama.cpp's published sizes for an 8B model, rounded up).
BITS_PER_WEIGHT = {
    Quantization.Q4_K_M: 4.9,
    Quantization.Q5_K_M: 5.7,
    Quantization.Q6_K: 6.6,
    Quantization.Q8_0: 8.5,
    Quantization.F16: 16.0,
    Quantization.Q4_1: 5.0,
}
MARGIN = 1.10


class NotEnoughDisk(RuntimeError):
    pass


def parameter_count(checkpoint: Path) -> int:
    """Weights in an HF checkpoint, from the safetensors headers (no tensor is read)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(checkpoint.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as fh:
            total += sum(math.prod(fh.get_slice(key).get_shape()) for key in fh.keys())
    return total


def expected_bytes(params: int, quants: list[Quantization], mode: ExportMode, base_exported: bool) -> int:
    """The most the export holds at once in its temporary folder."""

    def gguf(quant: Quantization) -> float:
        return params * BITS_PER_WEIGHT[quant] / 8

    if mode is ExportMode.MERGED:  # the fp32 merged folder, then f16, then each quantization beside f16
        return int(max(4 * params, gguf(Quantization.F16) + sum(gguf(q) for q in quants if q is not Quantization.F16)))
    # adapter: the base release fetched (f16 + quant), made first if it does not exist yet (twice the same)
    base = gguf(Quantization.F16) + (gguf(quants[0]) if quants[0] is not Quantization.F16 else 0)
    return int(base * (1 if base_exported else 2))


def check_free_space(
    folder: Path, base_model: str, quants: list[Quantization], mode: ExportMode, store: ArtifactStore, settings: Settings
) -> None:
    checkpoint = hf_checkpoint(base_model, settings)
    if not isinstance(checkpoint, Path):
        return  # a hub id: its size is unknown until it is downloaded
    base_exported = False
    if mode is ExportMode.ADAPTER:
        base_exported = store.get(Release, base_release_tag(base_model, quants[0], settings)) is not None
    needed = expected_bytes(parameter_count(checkpoint), quants, mode, base_exported) * MARGIN
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise NotEnoughDisk(
            f"this export needs about {needed / 1e9:.2f} GB of temporary space in {folder} and only "
            f"{free / 1e9:.2f} GB is free: free some space or point TMPDIR at a larger disk"
        )
