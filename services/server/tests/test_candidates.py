"""Candidate generation: sampled answers scored, the bad ones handed to the collector with a suggestion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from server_helpers import Server, easy_qa_set

from prefloop_core.contracts import CandidateRecord
from prefloop_core.qalog import iter_records

EXE = str(Path(sys.executable).parent / "prefloop-server")


def test_sampled_bad_answers_come_with_the_best_one_as_a_suggestion(server: Server, tmp_path: Path) -> None:
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": "worse"}).raise_for_status()  # a weak model: many bad samples
    admin.post("/admin/promote", json={"tag": "worse"}).raise_for_status()
    qa_file = tmp_path / "easy.json"
    qa_file.write_text(easy_qa_set().model_dump_json())
    result = subprocess.run(
        [
            EXE,
            "qa",
            "--endpoint",
            server.url,
            "--set",
            str(qa_file),
            "--out",
            str(tmp_path / "out"),
            "--candidates",
            "4",
            "--max-tokens",
            "24",
        ],
        capture_output=True,
        text=True,
        env=server.env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    path = tmp_path / "out" / "easy-worse.candidates.jsonl"
    candidates = [c for c in iter_records(path) if isinstance(c, CandidateRecord)]
    assert candidates, result.stdout
    assert all(c.record.score < 0.7 for c in candidates)
    assert all(c.suggestion_score is None or c.suggestion_score >= 0.7 for c in candidates)
    per_question: dict[str, set[str]] = {}
    for c in candidates:
        per_question.setdefault(c.record.question_id, set()).add(c.record.answer)
    assert max(len(answers) for answers in per_question.values()) >= 2, "sampling gave identical answers"


def test_greedy_candidates_are_refused(server: Server, tmp_path: Path) -> None:
    qa_file = tmp_path / "easy.json"
    qa_file.write_text(easy_qa_set().model_dump_json())
    result = subprocess.run(
        [EXE, "qa", "--endpoint", server.url, "--set", str(qa_file), "--model", "m", "--candidates", "4", "--temperature", "0"],
        capture_output=True,
        text=True,
        env=server.env(),
    )
    assert result.returncode == 2 and "--temperature above 0" in result.stderr


def test_the_admin_api_samples_the_live_model_and_needs_a_live_model_and_the_token(server: Server) -> None:
    admin, body = server.admin(), {"qa_set": easy_qa_set().model_dump(mode="json"), "samples": 3}
    assert admin.post("/admin/candidates", json=body).status_code == 409  # nothing live yet
    admin.post("/admin/deploy", json={"tag": "worse"}).raise_for_status()
    admin.post("/admin/promote", json={"tag": "worse"}).raise_for_status()
    assert httpx.post(f"{server.url}/admin/candidates", json=body).status_code == 401
    assert admin.post("/admin/candidates", json={**body, "samples": 1}).status_code == 422
    answered = admin.post("/admin/candidates", json=body).raise_for_status().json()
    found = [CandidateRecord.model_validate(c) for c in answered]
    assert found and all(c.record.model == "worse" and c.record.score < 0.7 for c in found)
