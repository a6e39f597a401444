"""`collect`: read QA logs, keep the answers at or under the threshold from the window, queue them."""

from __future__ import annotations

from dataclasses import astuple, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prefloop_core.contracts import CandidateRecord, QARecord
from prefloop_core.problems import Problem
from prefloop_core.qalog import iter_records
from prefloop_collector.queue import IngestCounts, ReviewQueue

LOG_SUFFIXES = (".jsonl", ".md")


@dataclass
class CollectReport:
    files: int = 0
    records: int = 0
    in_window: int = 0
    bad_answers: int = 0
    counts: IngestCounts = field(default_factory=IngestCounts)
    problems: list[Problem] = field(default_factory=list)


def needs_review(record: QARecord, threshold: float) -> bool:
    """A bad answer to a question people may train on: held-out questions are only ever measured (a corrected
    held-out answer in the training data would make the held-out accuracy meaningless)."""
    return record.score <= threshold and record.split != "heldout"


def log_files(paths: list[Path]) -> tuple[list[Path], list[Problem]]:
    """The QA logs named: files as given, folders searched for *.jsonl and *.md."""
    found: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in LOG_SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            problems.append(Problem(str(path), "", None, "no such file or folder"))
    return found, problems


def collect(
    queue: ReviewQueue,
    paths: list[Path],
    threshold: float,
    window_days: int,
    max_chars: int,
    now: datetime | None = None,
    batch: int = 5000,
) -> CollectReport:
    """Stream the logs and queue their bad answers in batches (one transaction each)."""
    report = CollectReport()
    files, report.problems = log_files(paths)
    since = (now or datetime.now(timezone.utc)) - timedelta(days=window_days)
    pending: list[QARecord | CandidateRecord] = []
    totals = IngestCounts()

    def flush() -> None:
        nonlocal totals
        counts = queue.ingest(pending)
        totals = IngestCounts(*(a + b for a, b in zip(astuple(totals), astuple(counts), strict=True)))
        pending.clear()

    for path in files:
        report.files += 1
        for item in iter_records(path, max_chars):
            if isinstance(item, Problem):
                report.problems.append(item)
                continue
            report.records += 1
            record = item.record if isinstance(item, CandidateRecord) else item
            if record.asked_at < since:
                continue
            report.in_window += 1
            if needs_review(record, threshold):
                report.bad_answers += 1
                pending.append(item)
                if len(pending) >= batch:
                    flush()
    flush()
    report.counts = totals
    return report
