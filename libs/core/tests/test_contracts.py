"""The shared contracts: versioned, strict, and round-tripping through JSON."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from prefloop_core.contracts import (
    ChatMessage,
    DatasetManifest,
    HistoryAction,
    PreferencePair,
    QARecord,
    Release,
    ReleaseHistoryEntry,
    ReviewItem,
    JobResult,
    TrainingProgress,
    TrainingRun,
)
from prefloop_core.ids import dataset_id_for, release_tag

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)


def qa_record(**extra: object) -> QARecord:
    fields: dict[str, object] = {
        "record_id": "r1",
        "asked_at": NOW,
        "question_id": "mc-001",
        "question": "크리퍼는 무엇을 두려워하나요?",
        "game": "minecraft",
        "answer": "모릅니다",
        "key_facts": ["고양이"],
        "score": 0.0,
        "model": "smollm2-135m-instruct-base",
        **extra,
    }
    return QARecord.model_validate(fields)


def test_every_contract_round_trips_through_json() -> None:
    samples = [
        qa_record(),
        ReviewItem(item_id=1, question="q"),
        PreferencePair(
            prompt=[ChatMessage(role="user", content="q")],
            chosen=[ChatMessage(role="assistant", content="good")],
            rejected=[ChatMessage(role="assistant", content="bad")],
        ),
        DatasetManifest(dataset_id="ds-0123456789abcdef", created_at=NOW, pair_count=3),
        TrainingRun(
            run_id="run-0123456789abcdef-0a1b2c3d",
            dataset_id="ds-0123456789abcdef",
            base_model="tiny",
            method="dpo",
            device="cpu",
            dtype="float32",
            started_at=NOW,
        ),
        Release(tag="tiny-dpo-20261123-1", base_model="tiny", mode="merged", created_at=NOW),
        ReleaseHistoryEntry(at=NOW, action=HistoryAction.PROMOTE, tag="tiny-dpo-20261123-1", trigger="cli:alice"),
    ]
    for sample in samples:
        assert sample.schema_version == 1
        assert type(sample).model_validate_json(sample.model_dump_json()) == sample


def test_a_newer_schema_version_is_refused_with_advice() -> None:
    with pytest.raises(ValidationError, match="schema_version 2 is not supported.*upgrade prefloop"):
        QARecord.model_validate({**qa_record().model_dump(), "schema_version": 2})


def test_unknown_fields_are_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="accuracy\n.*Extra inputs are not permitted"):
        QARecord.model_validate({**qa_record().model_dump(), "accuracy": 0.5})


def test_scores_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(ValidationError, match="score\n.*less than or equal to 1"):
        qa_record(score=1.5)


@pytest.mark.parametrize("tag", ["../x", "a/b", "", ".x"])
def test_release_tags_cannot_be_paths(tag: str) -> None:
    with pytest.raises(ValidationError, match="not a valid id"):
        Release(tag=tag, base_model="tiny", mode="merged", created_at=NOW)


@pytest.mark.parametrize(
    "fields",
    [
        {"mode": "ensemble", "rule": "consensus"},  # no members
        {"mode": "ensemble", "members": ["a", "b"]},  # no rule
        {"mode": "ensemble", "members": ["a"], "rule": "consensus"},  # one member
        {"mode": "ensemble", "members": ["a", "a"], "rule": "consensus"},
        {"mode": "adapter", "members": ["a", "b"], "rule": "judge"},  # only an ensemble has members
    ],
)
def test_only_an_ensemble_names_members_and_a_rule_and_it_has_two_or_more(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="ensemble"):
        Release.model_validate({"tag": "e", "base_model": "tiny", "created_at": NOW, **fields})
    assert Release(tag="e", base_model="tiny", mode="ensemble", members=["a", "b"], rule="judge", created_at=NOW).members


def test_ids_have_their_documented_shapes() -> None:
    assert dataset_id_for("ab" * 32) == "ds-abababababababab"
    assert release_tag("smollm2-135m", "dpo", NOW, 2) == "smollm2-135m-dpo-20261123-2"


def test_volatile_fields_do_not_change_an_artifacts_content() -> None:
    a = Release(tag="t1", base_model="tiny", mode="merged", created_at=NOW)
    b = Release(tag="t1", base_model="tiny", mode="merged", created_at=NOW.replace(hour=9), qa_accuracy=0.8)
    c = Release(tag="t1", base_model="other", mode="merged", created_at=NOW)
    assert a.content_fingerprint() == b.content_fingerprint() != c.content_fingerprint()


def test_a_progress_line_round_trips_and_other_lines_are_not_progress() -> None:
    progress = TrainingProgress(stage="dpo", step=3, total=30, eta_s=41.5, loss=0.69, **{"rewards/margins": 0.1})
    line = progress.line()
    assert line.startswith("PREFLOOP_PROGRESS {")
    parsed = TrainingProgress.parse(line)
    assert parsed == progress and parsed.model_extra == {"loss": 0.69, "rewards/margins": 0.1}
    for other in ("[dpo] [###.....] step 3/30", "PREFLOOP_PROGRESS {not json", 'PREFLOOP_PROGRESS {"stage": "dpo"}'):
        assert TrainingProgress.parse(other) is None


def test_a_jobs_result_is_its_last_result_line_wherever_the_log_puts_it() -> None:
    lines = ["[1/4] merging", JobResult(tag="tiny-dpo-20261123-1").line(), "changelog: ...", "tiny-dpo-20261123-1"]
    assert JobResult.last_in(lines) == JobResult(tag="tiny-dpo-20261123-1")
    reused = JobResult(run_id="run-0123456789abcdef-0a1b2c3d", reused=True)
    assert JobResult.last_in([*lines, reused.line()]).run_id == reused.run_id
    with pytest.raises(ValueError, match="no PREFLOOP_RESULT"):
        JobResult.last_in(["run failed", 'PREFLOOP_RESULT {"tag": "../escape"}'])  # an unsafe id is no result
