"""`prefloop import` of the preference data people arrive with: the DPO guide's, TRL's standard and conversational
formats, JSON or JSON Lines, Korean and English; as reviewed pairs that pass the checks and go into a snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import Collector
from test_collect_cli import run

from prefloop_core.contracts import ChatMessage, DatasetManifest, ImportFormat, PairSplit, PreferencePair
from prefloop_core.settings import Settings
from prefloop_core.store import open_store
from prefloop_collector.importer import parse_import


def user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


# The DPO guide's example, both prompt forms, as it tells people to prepare it.
GUIDE = [
    {
        "prompt": "Python에서 리스트와 튜플의 차이점을 설명하세요.",
        "chosen": "리스트는 변경 가능(mutable)하고 튜플은 변경 불가능(immutable)합니다.",
        "rejected": "리스트와 튜플은 같습니다.",
    },
    {
        "prompt": {"instruction": "다음 문장을 번역하세요.", "input": "Hello, world!"},
        "chosen": "안녕하세요, 세상!",
        "rejected": "Hello, world!",
    },
]
# TRL's standard preference format, with the scores and ids a published dataset carries.
STANDARD = [
    {"prompt": "The sky is", "chosen": " blue.", "rejected": " green.", "score_chosen": 9.0, "score_rejected": 2.0},
    {"prompt": "하늘은 무슨 색인가요?", "chosen": "파란색입니다.", "rejected": "초록색입니다.", "id": "b-1"},
]
CONVERSATIONAL = [
    {
        "prompt": [{"role": "system", "content": "Answer briefly."}, user("What color is the sky?")],
        "chosen": [assistant("It is blue.")],
        "rejected": [assistant("It is green.")],
    },
    {"prompt": [user("크리퍼는 무엇을 두려워하나요?")], "chosen": [assistant("고양이")], "rejected": [assistant("물")]},
]
# TRL's implicit prompt: the messages both conversations begin with.
IMPLICIT = [
    {
        "chosen": [user("What color is the sky?"), assistant("It is blue.")],
        "rejected": [user("What color is the sky?"), assistant("It is green.")],
    },
    {
        "chosen": [user("안녕"), assistant("무엇을 도와드릴까요?"), user("크리퍼는?"), assistant("고양이를 두려워해요.")],
        "rejected": [user("안녕"), assistant("무엇을 도와드릴까요?"), user("크리퍼는?"), assistant("몰라요.")],
    },
]
PREFLOOP = [
    {"question": "How much obsidian for a Nether portal?", "rejected": "6", "chosen": "10", "game": "minecraft"},
    {"question": "크리퍼는 무엇을 두려워하나요?", "rejected": "물", "chosen": "고양이", "game": "minecraft"},
]


def as_json(entries: list[dict[str, Any]]) -> bytes:
    return json.dumps(entries, ensure_ascii=False, indent=2).encode()


def as_jsonl(entries: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries).encode()


@pytest.mark.parametrize("encode", [as_json, as_jsonl], ids=["json", "jsonl"])
@pytest.mark.parametrize(
    ("entries", "fmt", "prompts", "answers"),
    [
        (
            GUIDE,
            ImportFormat.STANDARD,
            [
                [ChatMessage(role="user", content="Python에서 리스트와 튜플의 차이점을 설명하세요.")],
                [ChatMessage(role="user", content="다음 문장을 번역하세요.\n\nHello, world!")],
            ],
            [
                ("리스트는 변경 가능(mutable)하고 튜플은 변경 불가능(immutable)합니다.", "리스트와 튜플은 같습니다."),
                ("안녕하세요, 세상!", "Hello, world!"),
            ],
        ),
        (
            STANDARD,
            ImportFormat.STANDARD,
            [[ChatMessage(role="user", content="The sky is")], [ChatMessage(role="user", content="하늘은 무슨 색인가요?")]],
            [(" blue.", " green."), ("파란색입니다.", "초록색입니다.")],
        ),
        (
            CONVERSATIONAL,
            ImportFormat.CONVERSATIONAL,
            [
                [
                    ChatMessage(role="system", content="Answer briefly."),
                    ChatMessage(role="user", content="What color is the sky?"),
                ],
                [ChatMessage(role="user", content="크리퍼는 무엇을 두려워하나요?")],
            ],
            [("It is blue.", "It is green."), ("고양이", "물")],
        ),
        (
            IMPLICIT,
            ImportFormat.CONVERSATIONAL,
            [
                [ChatMessage(role="user", content="What color is the sky?")],
                [
                    ChatMessage(role="user", content="안녕"),
                    ChatMessage(role="assistant", content="무엇을 도와드릴까요?"),
                    ChatMessage(role="user", content="크리퍼는?"),
                ],
            ],
            [("It is blue.", "It is green."), ("고양이를 두려워해요.", "몰라요.")],
        ),
        (PREFLOOP, ImportFormat.PREFLOOP, [None, None], [("10", "6"), ("고양이", "물")]),
    ],
    ids=["guide", "trl-standard", "trl-conversational", "trl-implicit-prompt", "prefloop"],
)
def test_each_format_is_recognised_by_its_fields(
    encode: Any, entries: list[dict[str, Any]], fmt: ImportFormat, prompts: list[Any], answers: list[tuple[str, str]]
) -> None:
    parsed = parse_import(encode(entries), "prefs", 20_000)
    assert parsed.problems == [] and parsed.format is fmt
    assert [e.messages() for e in parsed.entries] == prompts
    assert [(e.chosen, e.rejected) for e in parsed.entries] == answers
    forced = parse_import(encode(entries), "prefs", 20_000, fmt)
    assert forced.entries == parsed.entries


def test_fields_a_format_does_not_read_are_ignored_and_named() -> None:
    parsed = parse_import(as_jsonl(STANDARD), "prefs.jsonl", 20_000)
    assert parsed.ignored == ["id", "score_chosen", "score_rejected"] and len(parsed.entries) == 2


def snapshot_pairs(home: Path) -> tuple[DatasetManifest, list[PreferencePair]]:
    snap = run(home, "snapshot", "--json")
    assert snap.returncode == 0, snap.stderr + snap.stdout
    manifest = DatasetManifest.model_validate_json(snap.stdout)
    store = open_store(Settings(home=home))
    lines = store.read_bytes(manifest, "pairs.jsonl").decode().splitlines()
    return manifest, [PreferencePair.model_validate_json(line) for line in lines]


def test_imported_pairs_keep_their_prompt_and_origin_pass_the_checks_and_go_into_a_snapshot(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "guide.json").write_bytes(as_json(GUIDE))
    (tmp_path / "trl.jsonl").write_bytes(as_jsonl(STANDARD + [{**STANDARD[0], "prompt": "The grass is"}]))
    (tmp_path / "chat.jsonl").write_bytes(as_jsonl(CONVERSATIONAL))

    guide = run(home, "import", str(tmp_path / "guide.json"))
    assert guide.returncode == 0, guide.stderr
    assert f"{tmp_path / 'guide.json'}: 2 standard entries\n" in guide.stdout
    assert "imported 2 pair(s); 0 duplicate(s); 0 unanswered" in guide.stdout
    trl = run(home, "import", str(tmp_path / "trl.jsonl"), "--reviewer", "hf")
    assert "3 standard entries; ignored field(s): id, score_chosen, score_rejected" in trl.stdout
    assert "imported 3 pair(s)" in trl.stdout
    chat = run(home, "import", str(tmp_path / "chat.jsonl"))
    assert "2 conversational entries" in chat.stdout and "imported 2 pair(s)" in chat.stdout
    again = run(home, "import", str(tmp_path / "guide.json"))
    assert "imported 0 pair(s); 2 duplicate(s)" in again.stdout

    manifest, pairs = snapshot_pairs(home)
    assert manifest.pair_count == 7 and manifest.games == {"other": 7}
    balance = next(c for c in manifest.checks if c.name == "game_balance")
    assert "no game 100% (a group of its own)" in balance.detail
    by_prompt = {p.prompt[-1].content: p for p in pairs}
    translate = by_prompt["다음 문장을 번역하세요.\n\nHello, world!"]
    assert translate.prompt == [ChatMessage(role="user", content="다음 문장을 번역하세요.\n\nHello, world!")]  # no RAG template
    assert translate.source == "import" and translate.split is PairSplit.TRAIN
    assert translate.origin is not None and translate.origin.model_dump(mode="json") == {
        "format": "standard",
        "file": "guide.json",
        "index": 1,
    }
    assert by_prompt["The grass is"].reviewer == "hf" and by_prompt["The grass is"].origin.index == 2  # type: ignore[union-attr]
    sky = by_prompt["What color is the sky?"]
    assert [m.role for m in sky.prompt] == ["system", "user"] and sky.chosen[0].content == "It is blue."


def test_an_evaluation_file_is_set_aside_for_the_trainer(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "eval.jsonl").write_bytes(as_jsonl(STANDARD))
    evaluation = run(home, "import", str(tmp_path / "eval.jsonl"), "--split", "eval")
    assert evaluation.returncode == 0, evaluation.stderr
    assert "imported 2 pair(s) for evaluation" in evaluation.stdout
    assert "for evaluation          2 (imported with --split eval)" in evaluation.stdout
    status = json.loads(run(home, "status", "--json").stdout)
    assert status["eval_pairs"] == 2 and status["trainable_pairs"] == 0

    refused = run(home, "snapshot")  # evaluation pairs are not trained on: min_pairs (2 here) counts none of them
    assert refused.returncode == 1 and "FAIL min_pairs" in refused.stdout and "0 pairs" in refused.stdout

    (tmp_path / "train.json").write_bytes(as_json(GUIDE))
    assert run(home, "import", str(tmp_path / "train.json")).returncode == 0
    manifest, pairs = snapshot_pairs(home)
    assert manifest.pair_count == 4 and manifest.games == {"other": 2}
    assert sorted((p.split.value, p.prompt[-1].content) for p in pairs) == [
        ("eval", "The sky is"),
        ("eval", "하늘은 무슨 색인가요?"),
        ("train", "Python에서 리스트와 튜플의 차이점을 설명하세요."),
        ("train", "다음 문장을 번역하세요.\n\nHello, world!"),
    ]


def test_format_can_be_forced_and_a_file_holds_one_format(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "mixed.json").write_bytes(as_json([GUIDE[0], PREFLOOP[0]]))
    mixed = run(home, "import", str(tmp_path / "mixed.json"))
    assert mixed.returncode == 1
    assert "item 1: is a prefloop entry but the file's first entry is standard: a file holds one format" in mixed.stderr
    forced = run(home, "import", str(tmp_path / "mixed.json"), "--format", "conversational")
    assert "item 0: is a standard entry but --format says conversational" in forced.stderr
    bad = run(home, "import", str(tmp_path / "mixed.json"), "--format", "alpaca")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "Traceback" not in bad.stderr
    assert json.loads(run(home, "status", "--json").stdout)["chosen"] == 0


MALFORMED = {
    "missing rejected": ([{"prompt": "p", "chosen": "c"}], "item 0: rejected: required field is missing"),
    "instruction missing": (
        [{"prompt": {"input": "Hello"}, "chosen": "c", "rejected": "r"}],
        "item 0: prompt.instruction: required field is missing",
    ),
    "misspelt input": (
        [{"prompt": {"instruction": "번역하세요", "inputs": "Hello"}, "chosen": "c", "rejected": "r"}],
        "item 0: prompt.inputs: unknown field; remove it (or check its spelling)",
    ),
    "prompt a number": (
        [{"prompt": 5, "chosen": "c", "rejected": "r"}],
        'item 0: prompt: expected text or {"instruction", "input"}',
    ),
    "blank chosen": (
        [{"prompt": "p", "chosen": "  ", "rejected": "r"}],
        "item 0: chosen: Value error, is empty or only whitespace",
    ),
    "unknown role": (
        [{"prompt": [{"role": "robot", "content": "x"}], "chosen": [assistant("c")], "rejected": [assistant("r")]}],
        "item 0: prompt.0.role: Input should be 'system', 'user' or 'assistant'",
    ),
    "message without content": (
        [{"prompt": [{"role": "user"}], "chosen": [assistant("c")], "rejected": [assistant("r")]}],
        "item 0: prompt.0.content: required field is missing",
    ),
    "two chosen messages": (
        [{"prompt": [user("x")], "chosen": [assistant("c"), assistant("d")], "rejected": [assistant("r")]}],
        "item 0: chosen: expected one assistant message after the prompt, got assistant, assistant",
    ),
    "chosen by the user": (
        [{"prompt": [user("x")], "chosen": [user("c")], "rejected": [assistant("r")]}],
        "item 0: chosen: expected one assistant message after the prompt, got user",
    ),
    "prompt ends with the assistant": (
        [{"prompt": [user("x"), assistant("y")], "chosen": [assistant("c")], "rejected": [assistant("r")]}],
        "item 0: prompt: its last message is the assistant's; it must end with the user's message",
    ),
    "implicit prompt not shared": (
        [{"chosen": [user("x"), assistant("c")], "rejected": [user("y"), assistant("r")]}],
        'item 0: prompt: missing, and chosen and rejected begin differently: give "prompt"',
    ),
    "control character in a message": (
        [{"chosen": [user("p"), assistant("c\u0000")], "rejected": [user("p"), assistant("r")]}],
        "item 0: chosen.1.content: holds the control character '\\x00' at position 1: remove it",
    ),
    "prompt too long": (
        [{"prompt": "p" * 20_001, "chosen": "c", "rejected": "r"}],
        "item 0: prompt: 20,001 characters is over the limit",
    ),
    "not a pair": ([{"text": "hello"}], "item 0: not a preference pair; expected prefloop"),
    "not an object": (["hello"], "item 0: expected an object, got str"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_each_malformed_entry_is_refused_with_its_one_line_reason_and_nothing_is_imported(case: str) -> None:
    entries, reason = MALFORMED[case]
    first = entries[0]
    conversational = isinstance(first, dict) and any(isinstance(v, list) for v in first.values())
    good = CONVERSATIONAL if conversational else GUIDE  # valid entries of the same format around the bad one
    parsed = parse_import(as_json([good[0], *entries, good[1]]), "bad.json", 20_000)
    assert parsed.entries == []
    (problem,) = parsed.problems
    assert str(problem).startswith(f"bad.json {reason.replace('item 0', 'item 1')}") and "\n" not in str(problem)


def test_a_malformed_line_of_json_lines_is_named_by_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = tmp_path / "prefs.jsonl"
    path.write_bytes(as_jsonl(STANDARD) + b'{"prompt": "p", "chosen": "c"}\nnot json\n')
    result = run(home, "import", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "nothing imported: 2 problem(s)" in result.stderr
    assert f"{path}:3: rejected: required field is missing" in result.stderr
    assert f"{path}:4: not valid JSON: Expecting value at column 1" in result.stderr
    assert json.loads(run(home, "status", "--json").stdout)["chosen"] == 0


def test_the_api_imports_any_format_and_points_at_a_bad_field(collector: Collector) -> None:
    client = collector.client()
    bad = client.post("/api/import", json=[GUIDE[0], {**GUIDE[1], "prompt": {"input": "Hello"}}])
    assert bad.status_code == 422
    assert bad.json()["detail"] == [{"loc": ["body", 1, "prompt", "instruction"], "msg": "required field is missing"}]
    assert client.get("/api/status").json()["trainable_pairs"] == 0

    imported = client.post("/api/import", json=STANDARD, params={"split": "eval"})
    assert imported.status_code == 200, imported.text
    assert imported.json() == {
        "format": "standard",
        "imported": 2,
        "unanswered": 0,
        "duplicates": [],
        "ignored_fields": ["id", "score_chosen", "score_rejected"],
    }
    chat = client.post("/api/import", json=CONVERSATIONAL, params={"format": "conversational"}).json()
    assert chat["format"] == "conversational" and chat["imported"] == 2
    status = client.get("/api/status").json()
    assert status["eval_pairs"] == 2 and status["trainable_pairs"] == 2
    item = client.get("/api/items", params={"status": "chosen"}).json()[0]
    assert item["origin"] == {"format": "standard", "file": "request body", "index": 0} and item["split"] == "eval"


def test_json_lines_are_split_at_newlines_only() -> None:
    """A line separator inside a string (U+2028, which str.splitlines() splits at) and CRLF line ends."""
    data = as_jsonl([{**STANDARD[0], "prompt": "The sky\u2028is"}]).replace(b"\n", b"\r\n") + as_jsonl(GUIDE)
    parsed = parse_import(data, "prefs.jsonl", 20_000)
    assert parsed.problems == [] and [e.question for e in parsed.entries][:2] == ["The sky\u2028is", GUIDE[0]["prompt"]]
