"""Merge a run's LoRA adapter(s) into the base in full precision (never into 4-bit weights)."""

from __future__ import annotations

from pathlib import Path

from prefloop_core.contracts import TrainingRun
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore
from prefloop_ml.base_model import hf_checkpoint, load_tokenizer


def merge_run(run: TrainingRun, store: ArtifactStore, settings: Settings, work: Path) -> Path:
    """Base (fp32 on CPU) + the SFT adapter, if the run has one, + the adapter -> a plain HF folder."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    store.fetch(run, work / "run", [n for n in run.files if n.startswith(("adapter/", "sft_adapter/"))])
    model = AutoModelForCausalLM.from_pretrained(hf_checkpoint(run.base_model, settings), dtype=torch.float32)
    for stage in ("sft_adapter", "adapter"):  # base -> SFT -> DPO, in the order they were trained
        folder = work / "run" / stage
        if (folder / "adapter_config.json").is_file():
            model = PeftModel.from_pretrained(model, folder).merge_and_unload()
    merged = work / "merged"
    model.save_pretrained(merged)
    load_tokenizer(run.base_model, settings).save_pretrained(merged)
    return merged
