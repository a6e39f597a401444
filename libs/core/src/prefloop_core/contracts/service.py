"""What the services' HTTP APIs answer, typed: the server's admin API and the collector's API.

The services build these and FastAPI publishes them in each OpenAPI document; the typed clients
(`prefloop_core.clients`) return them, so the flows and the command lines read attributes, never string keys.
"""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from prefloop_core.contracts.common import SQL_INT_MAX
from prefloop_core.contracts.contributors import ContributorStats
from prefloop_core.contracts.dataset import CheckResult, Verdict
from prefloop_core.contracts.qa import QARecord
from prefloop_core.contracts.review import ImportFormat


class Wire(BaseModel):
    """An API answer: unknown fields refused, as in every contract (services and clients run one version)."""

    model_config = ConfigDict(extra="forbid")


# -- the server ------------------------------------------------------------------------------------------------------


class SlotName(str, enum.Enum):
    BLUE = "blue"
    GREEN = "green"

    @property
    def other(self) -> SlotName:
        return SlotName.GREEN if self is SlotName.BLUE else SlotName.BLUE

    @staticmethod
    def idle_beside(live: SlotName | None) -> SlotName:
        """The slot a deploy loads into: the one not live (blue while nothing is)."""
        return live.other if live else SlotName.BLUE


class SlotStatus(str, enum.Enum):
    EMPTY = "empty"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class SlotState(Wire):
    name: SlotName
    status: SlotStatus
    tag: str | None
    port: int | None
    pid: int | None
    in_flight: int
    loaded_at: datetime | None
    error: str | None


class ServerStatus(Wire):
    live: SlotName | None
    live_tag: str | None
    slots: list[SlotState]
    gate_running: bool = False

    def slot(self, name: SlotName) -> SlotState:
        return next(s for s in self.slots if s.name is name)

    @property
    def idle(self) -> SlotState:
        return self.slot(SlotName.idle_beside(self.live))


class RunSummary(Wire):
    qa_set: str
    model: str
    endpoint: str
    scorer: str
    started_at: datetime
    seconds: float
    asked: int
    answered: int
    failed: int
    accuracy: float = Field(description="Mean score of the answered questions.")
    correct: int = Field(description="Answers scoring at or above `correct_at`.")
    correct_at: float
    per_game: dict[str, float]
    per_split: dict[str, float]


class QAReport(Wire):
    """The server's `/admin/qa`: the QA set asked of the live model."""

    summary: RunSummary
    records: list[QARecord]


# -- the collector ---------------------------------------------------------------------------------------------------


class DatasetStatus(Wire):
    rejected: int = Field(description="Bad answers collected (all items).")
    chosen: int = Field(description="Items with a correct answer written.")
    pending: int
    skipped: int
    deleted: int
    trainable_pairs: int = Field(description="Chosen items that have a rejected answer, for training.")
    eval_pairs: int = Field(default=0, description="Imported pairs set aside for the trainer's evaluation.")
    target: int
    recommended_min: int
    progress: float = Field(description="trainable_pairs / target, capped at 1.")
    games: dict[str, float] = Field(description="Share of trainable pairs per game.")
    contributors: list[ContributorStats] = Field(default_factory=list, description="Per contributor, by name.")


class IngestResult(Wire):
    received: int
    bad_answers: int
    new_rejected: int
    new_items: int
    already_known: int


class ImportDuplicate(Wire):
    index: int = Field(ge=0, le=SQL_INT_MAX, description="The entry's position in the import file.")
    reason: str


class ImportResult(Wire):
    format: ImportFormat | None = Field(description="The format the entries were read as (None: an empty list).")
    imported: int
    unanswered: int
    duplicates: list[ImportDuplicate]
    ignored_fields: list[str] = Field(default_factory=list, description="Fields the format does not read.")


class SnapshotRefused(Wire):
    """The collector's 409 when a hard check fails: every check with its verdict and detail."""

    message: str
    checks: list[CheckResult]

    def reason(self) -> str:
        """The failed checks in one line: `name: detail; ...`."""
        failed = [c for c in self.checks if c.verdict is Verdict.FAIL]
        return "; ".join(f"{c.name}: {c.detail}" for c in failed) or self.message
