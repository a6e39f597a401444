"""`prefloop deploy/promote/rollback/slots/qa/gate` as a person runs them (against a running server, but `gate`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from server_helpers import Server, easy_qa_set

from prefloop_core.contracts import QARecord
from prefloop_core.qalog import read_records

EXE = str(Path(sys.executable).parent / "prefloop-server")
NOW = datetime.now(timezone.utc)


def run(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=server.env(), timeout=300)


def test_deploy_promote_qa_and_gate_from_the_command_line(server: Server, tmp_path: Path) -> None:
    assert run(server, "deploy", "good").returncode == 0
    assert run(server, "promote", "good").returncode == 0  # the first release: nothing live to compare with
    slots = json.loads(run(server, "slots").stdout)
    assert slots["status"]["live_tag"] == "good" and slots["history"][-1]["trigger"].startswith("cli:")

    qa_file = tmp_path / "easy.json"
    qa_file.write_text(easy_qa_set().model_dump_json())
    out = tmp_path / "qa"
    result = run(server, "qa", "--endpoint", server.url, "--set", str(qa_file), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "easy on good: accuracy" in result.stdout
    records, problems = read_records(out / "easy-good.records.jsonl")
    assert problems == [] and len(records) == 6 and {r.model for r in records} == {"good"}
    log = next((out / "log").glob("*.md"))
    md_records, md_problems = read_records(log)  # the collector's reader takes the daily log too
    assert md_problems == [] and [r.question_id for r in md_records] == [r.question_id for r in records]

    assert run(server, "deploy", "worse").returncode == 0
    gate = run(server, "qa", "--gate", "--set", str(qa_file), "--out", str(out / "gate"))
    assert gate.returncode == 1 and "QA gate: REFUSED" in gate.stdout  # refused: exit 1, for scripts
    assert (out / "gate" / "comparison.png").stat().st_size > 5000
    report = json.loads((out / "gate" / "gate.json").read_text())["report"]
    assert report["verdict"]["accepted"] is False and f"report {report['report_id']}" in gate.stdout
    refused = run(server, "promote", "worse")
    assert refused.returncode == 1 and "the QA gate refused worse" in refused.stderr
    assert "--force" in run(server, "promote", "worse", "--force").stderr  # needs --reason
    forced = run(server, "promote", "worse", "--force", "--reason", "the QA set is outdated")
    assert forced.returncode == 0 and json.loads(forced.stdout)["live_tag"] == "worse"
    entry = json.loads(run(server, "slots").stdout)["history"][-1]
    assert entry["forced"] == "the QA set is outdated" and entry["trigger"].startswith("cli:")
    assert entry["report_id"] == report["report_id"] and entry["accuracy"] == report["verdict"]["candidate_accuracy"]

    back = run(server, "rollback", "good-copy")
    assert back.returncode == 0 and json.loads(back.stdout)["live_tag"] == "good-copy"


def test_clear_errors_for_a_missing_server_and_a_bad_qa_set(server: Server, tmp_path: Path) -> None:
    env_down = {**server.env(), "PREFLOOP_SERVER_URL": "http://127.0.0.1:9"}
    down = subprocess.run([EXE, "promote", "good"], capture_output=True, text=True, env=env_down)
    assert down.returncode == 1 and "does not answer" in down.stderr and "Traceback" not in down.stderr

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "questions": [{"id": "a", "question": "q", "key_facts": []}]}))
    result = run(server, "qa", "--endpoint", server.url, "--set", str(bad))
    assert result.returncode == 2 and "question 0: key_facts" in result.stderr

    refused = run(server, "promote", "good")
    assert refused.returncode == 1 and "nothing to promote" in refused.stderr

    bad_tag = run(server, "deploy", "../etc")  # one line naming the field and what an id may hold, no Python list
    assert bad_tag.returncode == 1 and bad_tag.stderr.count("\n") == 1, bad_tag.stderr
    assert bad_tag.stderr.startswith("prefloop deploy: tag: Value error, '../etc' is not a valid id: use 1-128 letters")


def qa_records(path: Path, model: str, scores: dict[str, float], split: str = "train") -> Path:
    path.write_text(
        "".join(
            QARecord(
                record_id=f"{model}-{q}",
                asked_at=NOW,
                question_id=q,
                question=f"질문 {q}",
                answer="a",
                score=score,
                model=model,
                split=split,
            ).model_dump_json()
            + "\n"
            for q, score in scores.items()
        ),
        encoding="utf-8",
    )
    return path


def gate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOOP_SERVER_")}
    return subprocess.run([EXE, "gate", *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def test_the_offline_gate_decides_from_two_files_with_exit_codes_for_scripts(tmp_path: Path) -> None:
    """22 fixed against 7 regressed (the new user's demo round): accepted by default, refused by the count rule."""
    live_scores = {f"q{i}": 1.0 if 22 <= i < 45 else 0.0 for i in range(72)}
    cand_scores = {f"q{i}": 1.0 if i < 22 or 29 <= i < 45 else 0.0 for i in range(72)}
    live = qa_records(tmp_path / "live.jsonl", "base", live_scores)
    cand = qa_records(tmp_path / "cand.jsonl", "dpo-1", cand_scores)
    accepted = gate("--live", live, "--candidate", cand, "--out", tmp_path / "out")
    assert accepted.returncode == 0, accepted.stderr
    assert (
        "QA gate: ACCEPTED" in accepted.stdout
        and "22 fixed against 7 regressed: better beyond chance (p = 0.004" in accepted.stdout
    )
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"verdict.json", "comparison.md", "comparison.png"}

    old = gate("--live", live, "--candidate", cand, "--rule", "count", "--json")
    assert old.returncode == 1
    verdict = json.loads(old.stdout)
    assert verdict["accepted"] is False and verdict["rule"]["method"] == "count" and len(verdict["regressions"]) == 7
    assert gate("--live", live, "--candidate", cand, "--rule", "count", "--max-regressions", "7").returncode == 0


def test_the_offline_gate_names_the_file_and_line_of_bad_input(tmp_path: Path) -> None:
    live = qa_records(tmp_path / "live.jsonl", "base", {"a": 1.0, "b": 0.0})
    cand = qa_records(tmp_path / "cand.jsonl", "dpo-1", {"a": 1.0, "b": 1.0})
    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        cand.read_text().splitlines()[0]
        + "\n{not json\n"
        + cand.read_text().splitlines()[1].replace('"score":1.0', '"score":1.5')
        + "\n",
        encoding="utf-8",
    )
    bad = gate("--live", live, "--candidate", broken)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"{broken}:2: not valid JSON" in bad.stderr and f"{broken}:3: score:" in bad.stderr

    other = qa_records(tmp_path / "other.jsonl", "dpo-1", {"a": 1.0, "c": 1.0})
    mismatch = gate("--live", live, "--candidate", other)
    assert mismatch.returncode == 2 and "asked different questions (2 in one file only: b, c)" in mismatch.stderr

    twice = tmp_path / "twice.jsonl"
    twice.write_text(cand.read_text() + cand.read_text(), encoding="utf-8")
    assert "question a is answered twice" in gate("--live", live, "--candidate", twice).stderr
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(live.read_text().splitlines()[0] + "\n" + cand.read_text().splitlines()[1] + "\n", encoding="utf-8")
    assert "answers of 2 models" in gate("--live", mixed, "--candidate", cand).stderr
    assert gate("--live", tmp_path / "missing.jsonl", "--candidate", cand).returncode == 2
    flag = gate("--live", live, "--candidate", cand, "--alpha", "2")
    assert flag.returncode == 2 and "--alpha" in flag.stderr and "Traceback" not in flag.stderr
