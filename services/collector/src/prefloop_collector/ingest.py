"""`collect`: read QA logs, keep the answers at or under the threshold from the window, queue them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prefloop_core.contracts import QARecord
from prefloop_core.problems import Problem
from prefloop_core.qalog import read_records
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


def select(records: list[QARecord], since: datetime, threshold: float) -> tuple[list[QARecord], int]:
    """Bad answers (score <= threshold) asked since `since`; also how many were in the window."""
    in_window = [r for r in records if r.asked_at >= since]
    return [r for r in in_window if r.score <= threshold], len(in_window)


def collect(
    queue: ReviewQueue, paths: list[Path], threshold: float, window_days: int, max_chars: int,
    now: datetime | None = None,
) -> CollectReport:
    report = CollectReport()
    files, report.problems = log_files(paths)
    since = (now or datetime.now(timezone.utc)) - timedelta(days=window_days)
    bad: list[QARecord] = []
    for path in files:
        records, problems = read_records(path, max_chars)
        report.files += 1
        report.records += len(records)
        report.problems += problems
        selected, in_window = select(records, since, threshold)
        report.in_window += in_window
        bad += selected
    report.bad_answers = len(bad)
    report.counts = queue.ingest(bad)
    return report
