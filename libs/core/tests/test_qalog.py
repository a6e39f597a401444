"""QA logs: the markdown log round-trips, and every kind of bad input is pinned to file and line."""

from __future__ import annotations

from datetime import date, datetime, timezone

from prefloop_core.contracts import QARecord
from prefloop_core.qalog import parse_jsonl, parse_markdown, write_jsonl, write_markdown

DAY = date(2026, 11, 23)


def rec(n: int, **extra: object) -> QARecord:
    fields: dict[str, object] = {
        "record_id": f"r{n}",
        "asked_at": datetime(2026, 11, 23, 3, tzinfo=timezone.utc),
        "question_id": f"ow-{n}",
        "question": "트레이서의 궁극기는?\n## not a heading",
        "game": "overwatch",
        "answer": "> quoted\n### also not",
        "key_facts": ["펄스 폭탄", "a | b"],
        "score": 0.25,
        "model": "m",
        "context": "맥락\n\n둘째 문단",
        **extra,
    }
    return QARecord.model_validate(fields)


def test_markdown_log_round_trips_korean_and_tricky_lines() -> None:
    records = [rec(1), rec(2, context=None, reference="펄스 폭탄", language="ko", latency_s=0.5, qa_set="bundled")]
    parsed, problems = parse_markdown(write_markdown(records, DAY).encode(), "log/2026-11-23.md")
    assert problems == [] and parsed == records


def test_a_broken_markdown_section_is_reported_by_line_and_the_others_kept() -> None:
    text = write_markdown([rec(1), rec(2), rec(3)], DAY).replace("- score: 0.25", "- score: lots", 1)
    text = text.replace("- model: m\n", "- colour: red\n- model: m\n", 1)  # in the 1st section
    parsed, problems = parse_markdown(text.encode(), "x.md")
    assert [r.question_id for r in parsed] == ["ow-2", "ow-3"]
    assert len(problems) == 1 and str(problems[0]).startswith("x.md:") and "colour" in str(problems[0])
    text2 = write_markdown([rec(1), rec(2)], DAY).replace("- score: 0.25", "- score: lots", 1)
    parsed, problems = parse_markdown(text2.encode(), "x.md")
    assert [r.question_id for r in parsed] == ["ow-2"] and "score" in str(problems[0])


def test_jsonl_bad_lines_are_pinned_and_good_lines_kept() -> None:
    good = write_jsonl([rec(1)]).encode()
    data = (
        b"\xef\xbb\xbf"
        + good
        + b'{"broken": \n'
        + b"\xff\xfe bad utf8\n"
        + b'"a string"\n'
        + write_jsonl([rec(5)]).encode().replace(b'"score":0.25', b'"score":2')
        + write_jsonl([rec(6)]).encode().replace(b'"model"', b'"extra": 1, "model"')
    )
    parsed, problems = parse_jsonl(data, "f.jsonl")
    assert [r.record_id for r in parsed] == ["r1"]
    text = [str(p) for p in problems]
    assert text[0].startswith("f.jsonl:2: not valid JSON")
    assert text[1].startswith("f.jsonl:3: not valid UTF-8")
    assert text[2] == "f.jsonl:4: expected a JSON object, got str"
    assert text[3] == "f.jsonl:5: score: Input should be less than or equal to 1"
    assert text[4] == "f.jsonl:6: extra: unknown field; remove it (or check its spelling)"


def test_a_20mb_answer_is_refused_by_name_and_its_neighbours_kept() -> None:
    huge = rec(2, answer="가" * (20 * 1024 * 1024))
    parsed, problems = parse_jsonl(write_jsonl([rec(1), huge, rec(3)]).encode(), "f.jsonl", max_chars=20_000)
    assert [r.record_id for r in parsed] == ["r1", "r3"]
    assert str(problems[0]) == "f.jsonl:2: answer: 20,971,520 characters is over the limit of 20,000"


def test_empty_files_and_naive_times_are_explained() -> None:
    assert "file is empty" in str(parse_jsonl(b"\n\n", "e.jsonl")[1][0])
    assert "file is empty" in str(parse_markdown(b"", "e.md")[1][0])
    naive = write_jsonl([rec(1)]).replace("T03:00:00Z", "T03:00:00")
    assert "asked_at: Input should have timezone info" in str(parse_jsonl(naive.encode(), "n.jsonl")[1][0])


def test_a_game_that_looks_like_a_path_is_refused() -> None:
    data = write_jsonl([rec(1)]).replace('"overwatch"', '"../../etc"').encode()
    assert "game: Value error, '../../etc' is not a valid name" in str(parse_jsonl(data, "g.jsonl")[1][0])
