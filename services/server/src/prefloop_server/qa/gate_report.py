"""A QA gate run's verdict and its report in the bucket: what a promotion names and the server checks."""

from __future__ import annotations

import base64
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from prefloop_core.contracts import GateReport, GateResult, GateRule, QARecord
from prefloop_core.qalog import write_jsonl
from prefloop_core.store import ArtifactStore
from prefloop_server.bluegreen import GateHold
from prefloop_server.qa.drift import Measured, with_drift
from prefloop_server.qa.gate import chart_png, compare, markdown
from prefloop_server.qa.runner import QARun


def publish_gate(
    store: ArtifactStore,
    hold: GateHold,
    qa_set: str,
    rule: GateRule,
    live: QARun,
    candidate: QARun,
    drift: Measured | None = None,
) -> GateResult:
    """The verdict of two complete runs (with the drift measured between them), and its report published to the
    bucket (`qa/<report_id>/`)."""
    verdict = compare(live.records, candidate.records, rule)
    if drift is not None:
        verdict = with_drift(verdict, drift)
    table, chart = markdown(verdict), chart_png(verdict)
    now = datetime.now(timezone.utc)
    report = GateReport(
        report_id=f"gate-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}",
        created_at=now,
        qa_set=qa_set,
        live_tag=hold.live_tag,
        candidate_tag=hold.candidate_tag,
        verdict=verdict,
    )
    report = publish_report(store, report, live.records, candidate.records, table, chart)
    return GateResult(
        report=report,
        markdown=table,
        chart_png=base64.b64encode(chart).decode(),
        live_records=live.records,
        candidate_records=candidate.records,
    )


def publish_report(
    store: ArtifactStore, report: GateReport, live: list[QARecord], candidate: list[QARecord], table: str, chart: bytes
) -> GateReport:
    """The report's manifest with both runs' records (JSONL), the markdown table and the chart as its files."""
    with tempfile.TemporaryDirectory(prefix="prefloop-gate-") as tmp:
        folder = Path(tmp)
        files = {
            GateReport.LIVE_RECORDS: write_jsonl(live),
            GateReport.CANDIDATE_RECORDS: write_jsonl(candidate),
            GateReport.MARKDOWN: table,
        }
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        (folder / GateReport.CHART).write_bytes(chart)
        return store.publish(report, {name: folder / name for name in [*files, GateReport.CHART]})
