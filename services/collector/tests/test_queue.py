"""The SQLite queue: dedupe, attach, versioned saves that conflict, migrations, durability under kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from collector_helpers import record

from prefloop_core.contracts import ReviewStatus
from prefloop_collector.queue import Conflict, Filters, ReviewQueue


def test_reingesting_the_same_records_adds_nothing(queue: ReviewQueue) -> None:
    first = queue.ingest([record(1), record(2)])
    again = queue.ingest([record(1), record(2)])
    assert (first.new_rejected, first.new_items) == (2, 2)
    assert (again.new_rejected, again.new_items, again.already_known) == (0, 0, 2)


def test_a_new_bad_answer_to_a_queued_question_is_attached_not_a_second_item(queue: ReviewQueue) -> None:
    queue.ingest([record(1, score=0.4)])
    later = record(1, score=0.1).model_copy(
        update={"record_id": "rec-1b", "answer": "다른 틀린 답", "question": "  질문 1: 크리퍼는 무엇을   두려워하나요? "}
    )
    counts = queue.ingest([later])
    assert (counts.new_rejected, counts.new_items) == (1, 0)
    [item] = queue.items()
    assert [r.answer for r in item.rejected] == ["다른 틀린 답", "잘 모르겠습니다 1"]  # worst first


def test_the_second_reviewer_saving_the_same_item_gets_a_conflict_with_the_other_answer(queue: ReviewQueue) -> None:
    queue.ingest([record(1)])
    [item] = queue.items()
    queue.save_chosen(item.item_id, "고양이를 두려워합니다.", "minji", item.version)
    with pytest.raises(Conflict) as info:
        queue.save_chosen(item.item_id, "오셀롯이요", "joon", item.version)
    assert info.value.current.chosen == "고양이를 두려워합니다." and info.value.current.reviewer == "minji"
    assert queue.get(item.item_id).chosen == "고양이를 두려워합니다."


def test_filters_by_game_status_and_score(queue: ReviewQueue) -> None:
    queue.ingest([record(1, 0.1), record(2, 0.5, game="palworld"), record(3, 0.65, game="overwatch")])
    assert [i.item_id for i in queue.items(Filters(game="palworld"))] == [2]
    assert [i.game for i in queue.items(Filters(max_score=0.5))] == ["minecraft", "palworld"]
    assert [i.game for i in queue.items(Filters(min_score=0.3))] == ["palworld", "overwatch"]
    item = queue.items(Filters(game="overwatch"))[0]
    queue.skip(item.item_id, item.version)
    assert [i.status for i in queue.items(Filters(status=ReviewStatus.SKIPPED))] == [ReviewStatus.SKIPPED]


def test_migrations_are_versioned_and_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    assert ReviewQueue(path).schema_version == 4
    assert ReviewQueue(path).schema_version == 4  # re-opening migrates nothing
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(RuntimeError, match="schema version 99, newer than this collector knows"):
        ReviewQueue(path)


SAVER = """
import sys
from prefloop_collector.queue import ReviewQueue
queue = ReviewQueue(__import__("pathlib").Path(sys.argv[1]))
for item in queue.items():
    queue.save_chosen(item.item_id, f"answer {item.item_id}", "minji", item.version)
    print(item.item_id, flush=True)  # acknowledged: the transaction committed
"""


def test_a_kill_9_loses_no_acknowledged_save(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    queue = ReviewQueue(path)
    queue.ingest([record(n) for n in range(400)])
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True)
    acked: list[int] = []
    assert proc.stdout is not None
    while len(acked) < 60:
        acked.append(int(proc.stdout.readline()))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.1)
    saved = {i.item_id for i in ReviewQueue(path).items(Filters(status=ReviewStatus.CHOSEN))}
    assert set(acked) <= saved
    assert len(saved) < 400, "the saver should have been killed mid-way"


def test_a_version_1_queue_is_migrated_keeping_its_items(tmp_path: Path) -> None:
    from prefloop_collector.queue import MIGRATIONS

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for statement in MIGRATIONS[0].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("PRAGMA user_version=1")
        conn.execute(
            "INSERT INTO items (question_key, question, status, created_at, updated_at)"
            " VALUES ('k', 'old question', 'pending', '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00')"
        )
    queue = ReviewQueue(path)
    assert queue.schema_version == len(MIGRATIONS) == 4
    item = queue.get(1)
    assert item.question == "old question" and item.suggestion is None
    assert item.split == "train" and item.origin is None
    assert not item.offered and item.contributions == []


def test_candidates_bring_a_suggestion_that_never_replaces_a_written_answer(queue: ReviewQueue) -> None:
    from prefloop_core.contracts import CandidateRecord

    first = CandidateRecord(record=record(1, score=0.0), suggestion="고양이를 무서워해요", suggestion_score=0.8)
    queue.ingest([first])
    assert queue.get(1).suggestion == "고양이를 무서워해요"
    worse = CandidateRecord(
        record=record(1, score=0.1).model_copy(update={"record_id": "x2"}), suggestion="별로", suggestion_score=0.75
    )
    better = CandidateRecord(
        record=record(1, score=0.2).model_copy(update={"record_id": "x3"}), suggestion="고양이와 오셀롯", suggestion_score=1.0
    )
    queue.ingest([worse, better])
    item = queue.get(1)
    assert item.suggestion == "고양이와 오셀롯" and len(item.rejected) == 3
    queue.save_chosen(1, "사람이 쓴 답", "minji", item.version)
    queue.ingest(
        [
            CandidateRecord(
                record=record(1, score=0.0).model_copy(update={"record_id": "x4"}), suggestion="다른 제안", suggestion_score=1.0
            )
        ]
    )
    assert queue.get(1).suggestion == "고양이와 오셀롯" and queue.get(1).chosen == "사람이 쓴 답"
