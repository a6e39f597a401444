"""Machine-readable lines a one-shot job (trainer, exporter) writes among its log lines: `PREFIX {json}`.

A flow or a script that runs the job reads these instead of guessing from a line's position in the log; a person
reading the log sees them as what they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prefloop_core.ids import SafeId


class JobLine(BaseModel):
    PREFIX: ClassVar[str]

    def line(self) -> str:
        return self.PREFIX + self.model_dump_json()

    @classmethod
    def parse(cls, line: str) -> Self | None:
        """The record in a line of job output; None for any other line (or a malformed one)."""
        if not line.startswith(cls.PREFIX):
            return None
        try:
            return cls.model_validate_json(line[len(cls.PREFIX) :])
        except ValidationError:
            return None


class TrainingProgress(JobLine):
    """One progress line of a running training job, `PREFLOOP_PROGRESS {json}` on its output: a flow that runs the
    job shows them as a progress bar instead of passing them on as log lines."""

    model_config = ConfigDict(extra="allow")  # the step's logged metrics: loss, rewards/margins, learning_rate, ...
    PREFIX: ClassVar[str] = "PREFLOOP_PROGRESS "

    stage: str
    step: int = Field(ge=0)
    total: int = Field(ge=1)
    eta_s: float = Field(ge=0)


class JobResult(JobLine):
    """What a job made, its last machine-readable line: the run a training job published, the release an export
    published. `reused`: the same inputs had made it before, so nothing new was made and this is the earlier one."""

    model_config = ConfigDict(frozen=True)
    PREFIX: ClassVar[str] = "PREFLOOP_RESULT "

    run_id: SafeId | None = None
    tag: SafeId | None = None
    reused: bool = False

    @classmethod
    def last_in(cls, lines: Iterable[str]) -> JobResult:
        """The job's result: its last `PREFLOOP_RESULT` line. ValueError when it wrote none (it failed, or it is a
        version that predates the line)."""
        found = [result for line in lines if (result := cls.parse(line.strip())) is not None]
        if not found:
            raise ValueError("the job wrote no PREFLOOP_RESULT line: see its output above")
        return found[-1]
