"""A published training run: the adapter and everything needed to trust and reproduce it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from prefloop_core.contracts.common import Artifact, ArtifactKind, ChatTemplate
from prefloop_core.ids import SafeId


class TrainingMethod(str, enum.Enum):
    DPO = "dpo"
    ORPO = "orpo"
    KTO = "kto"
    SFT = "sft"
    SFT_DPO = "sft+dpo"


class TrainingRun(Artifact):
    """`runs/<run_id>/run.json`: resolved config, inputs, versions, device and timings of one run."""

    kind: ClassVar[ArtifactKind] = ArtifactKind.RUN
    manifest_name: ClassVar[str] = "run.json"
    id_field: ClassVar[str] = "run_id"
    volatile_fields: ClassVar[frozenset[str]] = frozenset({"timings", "finished_at", "peak_memory_gib"})

    run_id: SafeId
    dataset_id: SafeId
    base_model: str = Field(description="HF directory, hub id or GGUF file the adapter was trained on.")
    base_digest: str | None = Field(
        default=None,
        description=(
            "sha256 (first 16 hex digits) of the base GGUF: `smollm2` names whatever PREFLOOP_BASE_GGUF points at, so "
            "continuing or exporting the run checks the file is still the same. None for an HF folder or hub id."
        ),
    )
    chat_template: ChatTemplate | None = Field(
        default=None,
        description=("The chat template given to the base in place of its own (model.chat_template); none: the base's own."),
    )
    method: TrainingMethod
    config: dict[str, Any] = Field(default_factory=dict, description="The fully resolved training config.")
    versions: dict[str, str] = Field(default_factory=dict, description="torch, transformers, trl, peft, ...")
    device: str = Field(description="cuda, mps or cpu (with the GPU name when there is one).")
    dtype: str = Field(description="bfloat16, float16 or float32.")
    started_at: datetime
    finished_at: datetime | None = None
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per phase.")
    final_metrics: dict[str, float] = Field(default_factory=dict, description="Last logged loss, reward accuracy, ...")
    plan: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "What the trainer resolved for the hardware before loading weights: dtype, 4-bit, micro-batch, accumulation, "
            "checkpointing, optimizer, the memory estimate, what it counted as already in use, the longest example it was "
            "sized for (tokens), and the budget (GiB), "
            "planned steps, estimated seconds."
        ),
    )
    peak_memory_gib: float | None = Field(
        default=None,
        description=(
            "Measured peak, to hold against plan['memory_estimate_gib']: on CUDA the memory torch's allocator reserved "
            "(without the CUDA context, which the estimate counts as already in use), elsewhere the process's peak RSS."
        ),
    )


class Checkpoint(Artifact):
    """`checkpoints/<run_id>-<stage>-<step>/checkpoint.json`: a training checkpoint, so a killed run resumes."""

    kind: ClassVar[ArtifactKind] = ArtifactKind.CHECKPOINT
    manifest_name: ClassVar[str] = "checkpoint.json"
    id_field: ClassVar[str] = "checkpoint_id"

    checkpoint_id: SafeId
    run_id: SafeId
    stage: str = Field(description="sft or the preference method.")
    step: int = Field(ge=0)

    @staticmethod
    def id_for(run_id: str, stage: str, step: int) -> str:
        return f"{run_id}-{stage}-{step:07d}"
