"""Shared by the exporter's tests: a published run whose adapter is a real PEFT LoRA."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from prefloop_core.contracts import ChatTemplate, TrainingMethod, TrainingRun
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore
from prefloop_ml.base_model import hf_checkpoint


def publish_run(
    store: ArtifactStore,
    settings: Settings,
    base: str,
    work: Path,
    run_id: str = "run-20261123-120000-ab12",
    scale: float = 0.01,
    chat_template: ChatTemplate | None = None,
) -> TrainingRun:
    """A run whose adapter is a randomly initialised (non-zero) LoRA on all linear layers of `base` (trained, as far as
    its record says, with `chat_template`)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(hf_checkpoint(base, settings)),
        LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False),
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(scale)
    model.save_pretrained(work / run_id / "adapter")
    files = {f"adapter/{p.name}": p for p in (work / run_id / "adapter").iterdir()}
    run = TrainingRun(
        run_id=run_id,
        dataset_id="ds-0000000000000001",
        base_model=base,
        chat_template=chat_template,
        method=TrainingMethod.DPO,
        device="cpu",
        dtype="float32",
        started_at=datetime.now(timezone.utc),
    )
    return store.publish(run, files)
