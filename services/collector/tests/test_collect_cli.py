"""`prefloop collect`, `status`, `import`, `template`, `snapshot` as a person runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from collector_helpers import collector_env, record

from prefloop_core.contracts import DatasetManifest, PreferencePair
from prefloop_core.qalog import write_jsonl, write_markdown
from prefloop_core.settings import Settings
from prefloop_core.store import open_store

EXE = str(Path(sys.executable).parent / "prefloop-collector")


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=collector_env(home), timeout=60)


def logs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    good = [record(n, score=0.1 * (n % 10), game=["minecraft", "palworld", "overwatch"][n % 3]) for n in range(30)]
    old = [record(100 + n, score=0.1, days_ago=30) for n in range(5)]
    heldout = [record(200 + n, score=0.0, split="heldout") for n in range(3)]  # measured only: never queued
    (folder / "qa.jsonl").write_text(write_jsonl(good[:20] + old + heldout))
    (folder / "log").mkdir(exist_ok=True)
    (folder / "log" / f"{date.today():%Y-%m-%d}.md").write_text(write_markdown(good[20:], date.today()))
    return folder


def test_collect_queues_bad_answers_from_the_window_and_rerunning_adds_nothing(tmp_path: Path) -> None:
    home, folder = tmp_path / "home", logs(tmp_path / "qa")
    first = run(home, "collect", str(folder), "--threshold", "45%")
    assert first.returncode == 0, first.stderr
    # scores 0.0..0.9 cycle: 0.0-0.4 are bad (5 of every 10) -> 15 of 30; the 5 old ones are outside 7 days
    assert "read 38 QA records from 2 file(s); 33 in the last 7 days, 15 at or under 45%" in first.stdout
    assert "15 new rejected answers (15 total), 15 new questions; 15 pending review" in first.stdout
    assert "Dataset status" in first.stdout and "trainable pairs" in first.stdout

    again = run(home, "collect", str(folder), "--threshold", "0.45")
    assert "0 new rejected answers (15 total)" in again.stdout


def test_collect_reports_bad_lines_with_file_and_line_and_keeps_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "qa"
    folder.mkdir()
    lines = write_jsonl([record(1), record(2)]).splitlines()
    lines.insert(1, '{"record_id": "x", "score": "high"')  # malformed JSON on line 2
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "empty.jsonl").write_text("")
    result = run(tmp_path / "home", "collect", str(folder))
    assert result.returncode == 1
    assert f"{folder / 'a.jsonl'}:2: not valid JSON" in result.stderr
    assert f"{folder / 'empty.jsonl'}: file is empty" in result.stderr
    assert "2 new rejected answers (2 total)" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_bad_threshold_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    result = run(tmp_path / "home", "collect", str(tmp_path), "--threshold", "lots")
    assert result.returncode == 2 and "write 70%, 0.7 or 70" in result.stderr and "Traceback" not in result.stderr


def test_status_json(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "collect", str(logs(tmp_path / "qa")))
    status = json.loads(run(home, "status", "--json").stdout)
    assert status["pending"] == status["rejected"] > 0 and status["target"] == 500


def test_template_round_trip_then_snapshot_in_trl_format(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "collect", str(logs(tmp_path / "qa")), "--threshold", "45%")
    template = tmp_path / "template.json"
    assert run(home, "template", str(template)).returncode == 0
    entries = json.loads(template.read_text())
    assert len(entries) == 15 and all(e["chosen"] == "" for e in entries)
    for n, entry in enumerate(entries[:12]):
        entry["chosen"] = f"크리퍼는 고양이를 두려워합니다 ({n})."
    template.write_text(json.dumps(entries, ensure_ascii=False))

    imported = run(home, "import", str(template), "--reviewer", "crowd")
    assert imported.returncode == 0, imported.stderr
    assert "imported 12 pair(s); 0 duplicate(s); 3 unanswered" in imported.stdout
    again = run(home, "import", str(template), "--reviewer", "crowd")
    assert "imported 0 pair(s); 12 duplicate(s)" in again.stdout and "already imported" in again.stdout

    snap = run(home, "snapshot", "--json")
    assert snap.returncode == 0, snap.stderr + snap.stdout
    manifest = DatasetManifest.model_validate_json(snap.stdout)
    assert manifest.pair_count == 12 and sum(manifest.games.values()) == 12
    store = open_store(Settings(home=home))
    lines = store.read_bytes(manifest, "pairs.jsonl").decode().splitlines()
    pair = PreferencePair.model_validate_json(lines[0])
    assert [m.role for m in pair.prompt] == ["system", "user"]
    assert "Context:\n위키 문단" in pair.prompt[1].content and "Question: 질문" in pair.prompt[1].content
    assert pair.chosen[0].role == "assistant" and pair.reviewer == "crowd"

    same = run(home, "snapshot")
    assert f"dataset {manifest.dataset_id}: 12 pairs, already published (same content)" in same.stdout


def test_snapshot_is_refused_when_a_hard_check_fails(tmp_path: Path) -> None:
    result = run(tmp_path / "home", "snapshot")
    assert result.returncode == 1
    assert "FAIL min_pairs" in result.stdout and "snapshot refused" in result.stderr


def test_import_is_all_or_nothing_and_names_each_problem(tmp_path: Path) -> None:
    home = tmp_path / "home"
    entries = [
        {"question": "Q1", "rejected": "bad", "chosen": "good", "game": "minecraft"},
        {"question": "Q2", "rejected": "bad", "chosen": 5},
        {"question": "Q3", "rejected": "bad", "chosen": "ok", "colour": "red"},
        {"question": "Q4", "rejected": "bad", "chosen": "ok", "game": "../../etc"},
        {"question": "Q5", "rejected": "bad", "chosen": "x" * 20_001},
        {"question": "Q6", "rejected": "bad", "chosen": "ok", "prompt": {"instruction": "Do", "input": "this"}},
    ]
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(entries))
    result = run(home, "import", str(path))
    assert result.returncode == 1
    err = result.stderr
    assert "nothing imported: 4 problem(s)" in err
    assert f"{path} item 1: chosen: Input should be a valid string" in err
    assert f"{path} item 2: colour: unknown field" in err
    assert f"{path} item 3: game: Value error, '../../etc' is not a valid name" in err
    assert f"{path} item 4: chosen: 20,001 characters is over the limit of 20,000" in err
    assert json.loads(run(home, "status", "--json").stdout)["chosen"] == 0


def test_import_refuses_bad_files_clearly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cases = {
        "empty.json": (b"", "file is empty"),
        "bad.json": (b'[{"question": "q",\n "rejected": }]', "bad.json:2: not valid JSON"),
        "latin1.json": ('[{"question": "caf\xe9"}]'.encode("latin-1"), "not valid UTF-8"),
        "object.json": (b'{\n  "question": "q"\n}', "expected a JSON list of entries or JSON Lines"),
        "one-line.jsonl": (b'{"question": "q", "rejected": "a"}', "one-line.jsonl:1: chosen: required field is missing"),
        "deep.json": (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
        "blank.json": (
            json.dumps([{"question": "   ", "rejected": "a", "chosen": "b"}]).encode(),
            "item 0: question: Value error, is empty or only whitespace",
        ),
        "nul.json": (
            json.dumps([{"question": "q", "rejected": "a", "chosen": "b\u0000c"}]).encode(),
            "item 0: chosen: Value error, holds the control character '\\x00' at position 1: remove it",
        ),
    }
    for name, (data, expected) in cases.items():
        (tmp_path / name).write_bytes(data)
        result = run(home, "import", str(tmp_path / name))
        assert result.returncode == 1 and expected in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps([{"question": "q", "rejected": "a", "chosen": "b"}]).encode())
    assert "imported 1 pair(s)" in run(home, "import", str(bom)).stdout


def test_an_imported_prompt_is_trained_on_as_given(tmp_path: Path) -> None:
    home = tmp_path / "home"
    entries = [
        {"question": "Q1", "rejected": "bad one", "chosen": "good one", "prompt": {"instruction": "Answer:", "input": "Q1?"}},
        {"question": "Q2", "rejected": "bad two", "chosen": "good two", "prompt": "Plain prompt for Q2"},
        {"question": "Q3", "rejected": "bad three", "chosen": "good three", "context": "ctx 3"},
    ]
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(entries))
    assert run(home, "import", str(path)).returncode == 0
    env_home = collector_env(home)
    env_home["PREFLOOP_COLLECTOR_MIN_PAIRS"] = "1"
    snap = subprocess.run([EXE, "snapshot", "--json", "--allow-failed-checks"], capture_output=True, text=True, env=env_home)
    manifest = DatasetManifest.model_validate_json(snap.stdout)
    lines = open_store(Settings(home=home)).read_bytes(manifest, "pairs.jsonl").decode().splitlines()
    prompts = [PreferencePair.model_validate_json(line).prompt for line in lines]
    assert [m.content for m in prompts[0]] == ["Answer:\n\nQ1?"]
    assert [m.content for m in prompts[1]] == ["Plain prompt for Q2"]
    assert prompts[2][-1].content == "Context:\nctx 3\n\nQuestion: Q3"


def test_offer_and_contributors_as_a_person_runs_them(tmp_path: Path) -> None:
    home, folder = tmp_path / "home", logs(tmp_path / "qa")
    assert run(home, "collect", str(folder), "--threshold", "45%").returncode == 0
    offered = run(home, "offer", "--game", "palworld")
    assert offered.returncode == 0 and offered.stdout.startswith("offered 5 item(s) to contributors"), offered.stdout
    assert run(home, "offer", "--withdraw", "--item", "1").stdout.startswith("withdrew ")
    huge = run(home, "offer", "--item", str(2**64))
    assert huge.returncode == 2 and huge.stderr.strip().endswith("is not an item id: ids are from 1 up"), huge.stderr

    assert "no contributors yet" in run(home, "contributors", "list").stdout
    invited = run(home, "contributors", "invite", "hana")
    assert invited.returncode == 0 and invited.stdout.splitlines()[-1].startswith("pfc_")
    again = run(home, "contributors", "invite", "hana")
    assert again.returncode == 1 and again.stderr.strip() == (
        "prefloop contributors: a contributor named 'hana' exists already: choose another name"
    )
    assert (
        run(home, "contributors", "invite", "minji")
        .stderr.strip()
        .endswith("'minji' is a reviewer's name: choose another name for the contributor")
    )
    listed = run(home, "contributors", "list").stdout.splitlines()
    assert listed[0].startswith("Contributors") and listed[1].split() == ["hana", "0", "0", "0", "0", "0", "-"]
    assert run(home, "contributors", "revoke", "hana").stdout.strip() == (
        "revoked hana; 0 pending answer(s) set aside, everything else kept"
    )
    assert "hana (revoked)" in run(home, "status").stdout
    assert run(home, "contributors", "revoke", "nobody").returncode == 1
