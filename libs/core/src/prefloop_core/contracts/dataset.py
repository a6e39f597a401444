"""A published dataset snapshot: preference pairs frozen for training, with the checks they passed."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import ClassVar

from pydantic import Field

from prefloop_core.contracts.common import Artifact, ArtifactKind, Contract
from prefloop_core.ids import SafeId


class Verdict(str, enum.Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class CheckResult(Contract):
    """The outcome of one pre-training check."""

    name: str
    verdict: Verdict
    hard: bool = Field(description="A failed hard check blocks training.")
    detail: str = ""


class DatasetManifest(Artifact):
    """`datasets/<dataset_id>/manifest.json`: the pairs file plus counts, balance and check verdicts."""

    kind: ClassVar[ArtifactKind] = ArtifactKind.DATASET
    manifest_name: ClassVar[str] = "manifest.json"
    id_field: ClassVar[str] = "dataset_id"
    volatile_fields: ClassVar[frozenset[str]] = frozenset({"created_at"})

    dataset_id: SafeId = Field(description="Content hash of the pairs: the same pairs give the same id.")
    created_at: datetime
    pair_count: int = Field(ge=0)
    games: dict[str, int] = Field(default_factory=dict, description="Pairs per game.")
    checks: list[CheckResult] = Field(default_factory=list)
    prompt_template: str = Field(default="default", description="Name of the RAG prompt template used.")
