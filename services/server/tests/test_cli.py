"""`prefloop deploy/promote/rollback/slots/qa` as a person runs them against a running server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from server_helpers import Server, easy_qa_set

from prefloop_core.qalog import read_records

EXE = str(Path(sys.executable).parent / "prefloop-server")


def run(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=server.env(), timeout=300)


def test_deploy_promote_qa_and_gate_from_the_command_line(server: Server, tmp_path: Path) -> None:
    assert run(server, "deploy", "good").returncode == 0
    assert run(server, "promote", "--accuracy", "0.5").returncode == 0
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
    assert json.loads((out / "gate" / "gate.json").read_text())["verdict"]["accepted"] is False

    back = run(server, "rollback", "good-copy")
    assert back.returncode == 0 and json.loads(back.stdout)["live_tag"] == "good-copy"


def test_clear_errors_for_a_missing_server_and_a_bad_qa_set(server: Server, tmp_path: Path) -> None:
    env_down = {**server.env(), "PREFLOOP_SERVER_URL": "http://127.0.0.1:9"}
    down = subprocess.run([EXE, "promote"], capture_output=True, text=True, env=env_down)
    assert down.returncode == 1 and "does not answer" in down.stderr and "Traceback" not in down.stderr

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "questions": [{"id": "a", "question": "q", "key_facts": []}]}))
    result = run(server, "qa", "--endpoint", server.url, "--set", str(bad))
    assert result.returncode == 2 and "question 0: key_facts" in result.stderr

    refused = run(server, "promote")
    assert refused.returncode == 1 and "nothing to promote" in refused.stderr
