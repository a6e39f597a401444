"""Pydantic contracts shared by every stage. Import them from here."""

from prefloop_core.contracts.common import (
    SCHEMA_VERSION,
    SQL_INT_MAX,
    Artifact,
    ArtifactKind,
    ChatMessage,
    ChatTemplate,
    Contract,
    StoredFile,
    Text,
    check_text,
)
from prefloop_core.contracts.dataset import CheckResult, DatasetManifest, Verdict
from prefloop_core.contracts.gate import (
    Drift,
    GateCheck,
    GateMethod,
    GateReport,
    GateResult,
    GateRule,
    GateVerdict,
    QuestionResult,
    SplitTest,
)
from prefloop_core.contracts.qa import CandidateRecord, QAQuestion, QARecord, QASet
from prefloop_core.contracts.releases import (
    ExportMode,
    HistoryAction,
    Quantization,
    Release,
    ReleaseHistoryEntry,
)
from prefloop_core.contracts.review import PreferencePair, RejectedAnswer, ReviewItem, ReviewStatus
from prefloop_core.contracts.runs import Checkpoint, TrainingMethod, TrainingProgress, TrainingRun

__all__ = [
    "SCHEMA_VERSION",
    "SQL_INT_MAX",
    "Artifact",
    "CandidateRecord",
    "ArtifactKind",
    "ChatMessage",
    "ChatTemplate",
    "Checkpoint",
    "CheckResult",
    "Contract",
    "DatasetManifest",
    "Drift",
    "GateCheck",
    "GateMethod",
    "GateReport",
    "GateResult",
    "GateRule",
    "GateVerdict",
    "ExportMode",
    "HistoryAction",
    "PreferencePair",
    "QAQuestion",
    "QARecord",
    "QASet",
    "QuestionResult",
    "Quantization",
    "RejectedAnswer",
    "Release",
    "ReleaseHistoryEntry",
    "ReviewItem",
    "ReviewStatus",
    "SplitTest",
    "StoredFile",
    "Text",
    "check_text",
    "TrainingMethod",
    "TrainingProgress",
    "TrainingRun",
    "Verdict",
]
