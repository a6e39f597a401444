"""The QA gate's rule, its verdict, and the published report of one gate run: what decides a promotion.

The rule is applied by the server (`prefloop_server.qa.gate.compare`, live and offline); these are the shapes that
cross the boundary: the flows read a verdict, the server publishes a report to the bucket and reads it back when a
promotion names it.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from prefloop_core.contracts.common import Artifact, ArtifactKind, Contract
from prefloop_core.contracts.qa import QARecord
from prefloop_core.ids import SafeId


class GateMethod(str, enum.Enum):
    MCNEMAR = "mcnemar"  # exact test on the questions that changed, held-out non-inferiority, protected questions
    COUNT = "count"  # the first rule: a margin of mean score and a largest number of regressions


class GateRule(BaseModel):
    """How the gate decides. Defaults: the exact test at 5%; benchmarks/results/gate.md measured its error rates."""

    model_config = ConfigDict(extra="forbid")

    method: GateMethod = Field(default=GateMethod.MCNEMAR, description="mcnemar (default) or count (the first rule).")
    correct_at: float = Field(default=0.7, ge=0, le=1, description="A score at or above this counts as correct.")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="mcnemar: significance of 'better beyond chance'.")
    heldout_alpha: float = Field(
        default=0.05, gt=0, lt=1, description="mcnemar: significance at which the held-out questions count as worse."
    )
    max_heldout_drop: float = Field(
        default=0.10, ge=0, le=1, description="mcnemar: largest drop of held-out accuracy (mean score) accepted."
    )
    confidence: float = Field(default=0.95, gt=0, lt=1, description="Level of the accuracy change's interval.")
    min_delta: float = Field(default=0.03, ge=-1, le=1, description="count: candidate accuracy >= live + this.")
    max_regressions: int = Field(default=6, ge=0, description="count: most live-correct questions that may regress.")


class GateCheck(BaseModel):
    """One part of the decision, in words a reviewer reads."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="better, held-out, protected, margin, regressions.")
    passed: bool
    text: str


class QuestionResult(BaseModel):
    """One question's scores on both sides (None: that side did not answer it)."""

    model_config = ConfigDict(extra="forbid")

    question_id: str
    game: str | None = None
    split: str | None = None
    protected: bool = False
    live: float | None
    candidate: float | None
    kl: float | None = Field(
        default=None,
        description="Drift on this question: mean per-token KL(live || candidate) "
        "on the live model's answer, nats (None: not measured).",
    )

    @property
    def change(self) -> float:
        return (self.candidate or 0.0) - (self.live or 0.0)


class SplitTest(BaseModel):
    """The held-out questions: right/wrong changes both ways and whether they are worse beyond chance."""

    model_config = ConfigDict(extra="forbid")

    questions: int
    live_accuracy: float
    candidate_accuracy: float
    fixed: int
    regressed: int
    p_worse: float = Field(description="One-sided exact test: P(at least this many regressed | no change).")


class Drift(BaseModel):
    """How far the candidate's next-token distributions moved from the live model's on the gate's questions, before
    any answer changes: teacher-forced on the live model's own answers, both slots give their top tokens at each
    position (`prefloop_server.qa.drift`). A rising figure on the questions live already answers right is forgetting
    on its way, even while their scores still hold."""

    model_config = ConfigDict(extra="forbid")

    mean_kl: float = Field(description="Mean per-token KL(live || candidate) over all compared tokens, nats.")
    per_split: dict[str, float] = Field(description="The same per question split (train, heldout, ...).")
    live_correct_kl: float | None = Field(description="The same on the questions the live model answers right.")
    tokens: int = Field(description="Tokens compared (each answer's first `max_tokens`).")
    max_tokens: int
    top_k: int = Field(description="Tokens listed per position on each side; KL is taken over the union of both lists.")


class GateVerdict(Contract):
    live_model: str
    candidate_model: str
    live_accuracy: float = Field(description="Mean score of the live model.")
    candidate_accuracy: float
    delta: float = Field(description="candidate - live, mean score.")
    delta_interval: tuple[float, float] = Field(description="Confidence interval of `delta` (paired t over questions).")
    fixed: list[str] = Field(description="Questions wrong on live and correct on the candidate.")
    regressions: list[str] = Field(description="Questions correct on live and wrong on the candidate.")
    wins: list[str] = Field(description="Questions the candidate scored higher on.")
    losses: list[str] = Field(description="Questions the candidate scored lower on.")
    p_value: float = Field(
        description="One-sided exact test on fixed vs regressed: P(at least this many fixed | no better than live)."
    )
    heldout: SplitTest | None = None
    protected_regressions: list[str] = Field(default_factory=list)
    per_game: dict[str, tuple[float, float]]
    per_split: dict[str, tuple[float, float]]
    questions: list[QuestionResult]
    rule: GateRule
    checks: list[GateCheck]
    accepted: bool
    drift: Drift | None = Field(default=None, description="Measured by the server's gate on both slots; None offline.")

    @property
    def reasons(self) -> list[str]:
        """What decided: the failed checks when refused, every check when accepted."""
        failed = [c.text for c in self.checks if not c.passed]
        return failed if failed else [c.text for c in self.checks]


class GateReport(Artifact):
    """`qa/<report_id>/report.json`: one gate run, its verdict, and (as files) both runs' records, the table and the
    chart. A promotion names it; the server promotes only the tag it accepted, over the live tag it was compared with."""

    kind: ClassVar[ArtifactKind] = ArtifactKind.QA_REPORT
    manifest_name: ClassVar[str] = "report.json"
    id_field: ClassVar[str] = "report_id"

    report_id: SafeId
    created_at: datetime
    qa_set: str
    live_tag: SafeId
    candidate_tag: SafeId
    verdict: GateVerdict

    LIVE_RECORDS: ClassVar[str] = "live.jsonl"
    CANDIDATE_RECORDS: ClassVar[str] = "candidate.jsonl"
    MARKDOWN: ClassVar[str] = "comparison.md"
    CHART: ClassVar[str] = "comparison.png"


class GateResult(BaseModel):
    """The answer of the server's `/admin/gate`: the published report (with its verdict), the table, the chart, and
    both runs' records (the live model's go to the review queue like the daily QA's)."""

    model_config = ConfigDict(extra="forbid")

    report: GateReport
    markdown: str
    chart_png: str = Field(description="The before/after chart (per game, per question class), PNG in base64.")
    live_records: list[QARecord]
    candidate_records: list[QARecord]
