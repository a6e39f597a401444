"""Where a QA run goes: records (JSONL, the collector's input), the daily markdown log, a summary."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from prefloop_core.qalog import log_path, write_jsonl, write_markdown
from prefloop_server.qa.runner import QARun


def write_run(run: QARun, out: Path, name: str) -> dict[str, Path]:
    """`<out>/<name>.records.jsonl`, `<out>/<name>.summary.json`, and today's log appended in `<out>/log/`."""
    assert run.summary is not None
    out.mkdir(parents=True, exist_ok=True)
    records = out / f"{name}.records.jsonl"
    records.write_text(write_jsonl(run.records), encoding="utf-8")
    summary = out / f"{name}.summary.json"
    summary.write_text(run.summary.model_dump_json(indent=2), encoding="utf-8")
    day = datetime.now(timezone.utc).date()
    log = log_path(out / "log", day)
    log.parent.mkdir(parents=True, exist_ok=True)
    text = write_markdown(run.records, day)
    if log.exists():  # one log per day: later runs add their sections under the same heading
        text = text.split("\n", 2)[2]
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(text)
    else:
        log.write_text(text, encoding="utf-8")
    return {"records": records, "summary": summary, "log": log}


def summary_lines(run: QARun) -> list[str]:
    s = run.summary
    assert s is not None
    lines = [
        f"{s.qa_set} on {s.model}: accuracy {s.accuracy:.1%} ({s.correct}/{s.answered} correct at >= {s.correct_at:.0%}), "
        f"{s.failed} failed, {s.seconds:.1f} s",
        "  per game:  " + " · ".join(f"{g} {a:.1%}" for g, a in s.per_game.items()),
    ]
    if set(s.per_split) - {"all"}:
        lines.append("  per split: " + " · ".join(f"{k} {a:.1%}" for k, a in s.per_split.items()))
    lines += [f"  failed {qid}: {err}" for qid, err in run.failures[:10]]
    return lines
