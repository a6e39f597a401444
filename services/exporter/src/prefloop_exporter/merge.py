"""A run's LoRA adapter(s) over its base, merged in full precision (never into 4-bit weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefloop_core.contracts import TrainingRun
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore
from prefloop_ml.base_model import hf_checkpoint

ADAPTER_STAGES = ("sft_adapter", "adapter")  # base -> SFT -> DPO, in the order they were trained


def fetch_adapters(run: TrainingRun, store: ArtifactStore, work: Path) -> list[Path]:
    """The run's adapter folders, in training order (an sft+dpo run has two)."""
    store.fetch(run, work / "run", [n for n in run.files if n.startswith(tuple(f"{s}/" for s in ADAPTER_STAGES))])
    folders = [work / "run" / stage for stage in ADAPTER_STAGES]
    return [folder for folder in folders if (folder / "adapter_config.json").is_file()]


def merged_model(base_model: str, adapters: list[Path], settings: Settings) -> Any:
    """Base (fp32 on CPU) with every adapter merged in, in order: what the GGUF must reproduce."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_checkpoint(base_model, settings), dtype=torch.float32)
    for folder in adapters:
        model = PeftModel.from_pretrained(model, folder).merge_and_unload()
    return model.eval()
