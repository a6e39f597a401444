"""QA logs on disk: JSONL records and the human-readable daily markdown log, written and read here.

The QA runner writes both; the collector reads both. Reading never stops at a bad record:
each problem is reported with its file, line and field, and every valid record is kept.

The markdown log (`log/YYYY-MM-DD.md`), one section per answered question:

    # prefloop QA log 2026-11-23

    ## mc-001
    - record: 5d41402abc4b2a76
    - asked: 2026-11-23T03:00:00+00:00
    - model: smollm2-135m-instruct-base
    - score: 0.33
    - game: minecraft
    - key facts: ["고양이", "오셀롯"]

    ### Question
    > 크리퍼는 무엇을 두려워하나요?

    ### Answer
    > 모릅니다.

Metadata lines are `- <name>: <value>` (names: record, asked, model, score, scorer, game,
language, qa set, split, latency, key facts as a JSON list). Text sections (Question, Context,
Answer, Reference) quote every line with `> ` so an answer may contain anything, headings
included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from prefloop_core.contracts import CandidateRecord, QARecord
from prefloop_core.jsonlines import json_objects
from prefloop_core.problems import Problem, problems_from

_META = {
    "record": "record_id",
    "asked": "asked_at",
    "model": "model",
    "score": "score",
    "scorer": "scorer",
    "game": "game",
    "language": "language",
    "qa set": "qa_set",
    "split": "split",
    "latency": "latency_s",
    "key facts": "key_facts",
}
_META_NAME = {field: name for name, field in _META.items()}
_SECTIONS = {"Question": "question", "Context": "context", "Answer": "answer", "Reference": "reference"}
_TEXT_FIELDS = ("question", "context", "answer", "reference")


def log_path(folder: Path, day: date) -> Path:
    return folder / f"{day:%Y-%m-%d}.md"


def _too_long(record: QARecord, max_chars: int | None, source: str, where: str) -> list[Problem]:
    if max_chars is None:
        return []
    return [
        Problem(source, where, name, f"{len(value):,} characters is over the limit of {max_chars:,}")
        for name in _TEXT_FIELDS
        if (value := getattr(record, name)) is not None and len(value) > max_chars
    ]


# -- JSONL -----------------------------------------------------------------------------------


def iter_jsonl(
    lines: Iterable[bytes], source: str, max_chars: int | None = None, model: type[QARecord | CandidateRecord] = QARecord
) -> Iterator[QARecord | CandidateRecord | Problem]:
    """Records of JSONL lines, one at a time (a big file is never held whole); bad lines become problems."""
    seen_any = False
    for line in json_objects(lines, source, "a record"):
        seen_any = True
        if isinstance(line, Problem):
            yield line
            continue
        where, obj = line
        try:
            record = model.model_validate(obj)
        except ValidationError as exc:
            yield from problems_from(exc, source, where)
            continue
        qa = record.record if isinstance(record, CandidateRecord) else record
        too_long = _too_long(qa, max_chars, source, where)
        if too_long:
            yield from too_long
        else:
            yield record
    if not seen_any:
        yield Problem(source, "", None, "file is empty: no QA records in it")


def _split(items: Iterable[QARecord | CandidateRecord | Problem]) -> tuple[list[QARecord], list[Problem]]:
    records: list[QARecord] = []
    problems: list[Problem] = []
    for item in items:
        if isinstance(item, Problem):
            problems.append(item)
        else:
            records.append(item.record if isinstance(item, CandidateRecord) else item)
    return records, problems


def parse_jsonl(data: bytes, source: str, max_chars: int | None = None) -> tuple[list[QARecord], list[Problem]]:
    """Records of a JSONL file's bytes, and the problems of its bad lines."""
    return _split(iter_jsonl(data.split(b"\n"), source, max_chars))


def write_jsonl(records: Iterable[QARecord]) -> str:
    return "".join(record.model_dump_json() + "\n" for record in records)


# -- markdown --------------------------------------------------------------------------------


def write_markdown(records: Iterable[QARecord], day: date) -> str:
    """The daily markdown log for `records`."""
    out = [f"# prefloop QA log {day:%Y-%m-%d}", ""]
    for record in records:
        out += [f"## {record.question_id}"]
        for field, name in _META_NAME.items():
            value = getattr(record, field)
            if value is None or (field == "key_facts" and not value):
                continue
            if field == "asked_at":
                value = value.isoformat()
            elif field == "key_facts":
                value = json.dumps(value, ensure_ascii=False)
            out.append(f"- {name}: {value}")
        for title, field in _SECTIONS.items():
            text = getattr(record, field)
            if text is None:
                continue
            out += ["", f"### {title}"]
            out += [f"> {line}" if line else ">" for line in text.split("\n")]
        out.append("")
    return "\n".join(out) + "\n"


def parse_markdown(data: bytes, source: str, max_chars: int | None = None) -> tuple[list[QARecord], list[Problem]]:
    """Records of a daily markdown log; a malformed section is reported and skipped."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return [], [Problem(source, f"line {line}", None, "not valid UTF-8; save the file as UTF-8")]
    if not text.strip():
        return [], [Problem(source, "", None, "file is empty: no QA records in it")]

    records: list[QARecord] = []
    problems: list[Problem] = []
    sections: list[tuple[int, list[tuple[int, str]]]] = []  # (header line, [(line no, text)])
    for number, row in enumerate(text.split("\n"), start=1):
        if row.startswith("## "):
            sections.append((number, [(number, row)]))
        elif sections:
            sections[-1][1].append((number, row))
        elif row.strip() and not row.startswith("# "):
            problems.append(Problem(source, f"line {number}", None, "text before the first '## <question id>' section"))
    for start, lines in sections:
        record, found = _parse_section(lines, source)
        if record is not None:
            found += _too_long(record, max_chars, source, f"line {start}")
        if found:
            problems.extend(found)
        elif record is not None:
            records.append(record)
    return records, problems


def _parse_section(lines: list[tuple[int, str]], source: str) -> tuple[QARecord | None, list[Problem]]:
    start, header = lines[0]
    fields: dict[str, object] = {"question_id": header[3:].strip()}
    texts: dict[str, list[str]] = {}
    current: str | None = None
    for number, line in lines[1:]:
        where = f"line {number}"
        if line.startswith("### "):
            title = line[4:].strip()
            if title not in _SECTIONS:
                return None, [Problem(source, where, None, f"unknown section {title!r}; expected one of {', '.join(_SECTIONS)}")]
            current = _SECTIONS[title]
            texts[current] = []
        elif current is not None and (line == ">" or line.startswith("> ")):
            texts[current].append(line[2:])
        elif current is None and line.startswith("- "):
            name, sep, value = line[2:].partition(": ")
            if not sep or name not in _META:
                return None, [
                    Problem(source, where, name or None, f"expected '- <name>: <value>' with a name from: {', '.join(_META)}")
                ]
            if _META[name] == "key_facts":
                try:
                    fields["key_facts"] = json.loads(value)
                except json.JSONDecodeError as exc:
                    return None, [Problem(source, where, "key facts", f"not a JSON list: {exc.msg}")]
            else:
                fields[_META[name]] = value
        elif line.strip():
            expected = "a '> ' quoted line" if current else "'- <name>: <value>' or '### <section>'"
            return None, [Problem(source, where, None, f"unexpected line; expected {expected}")]
    for field, body in texts.items():
        fields[field] = "\n".join(body).rstrip("\n")
    try:
        return QARecord.model_validate(fields), []
    except ValidationError as exc:
        return None, problems_from(exc, source, f"line {start}")


CANDIDATES_SUFFIX = ".candidates.jsonl"


def iter_records(path: Path, max_chars: int | None = None) -> Iterator[QARecord | CandidateRecord | Problem]:
    """QA records (and problems) of a `.jsonl` file, streamed, or of a daily `.md` log;
    a `*.candidates.jsonl` file holds sampled candidates with suggestions."""
    source = str(path)
    if path.suffix not in (".jsonl", ".md"):
        yield Problem(source, "", None, "not a QA log: expected a .jsonl file or a daily .md log")
        return
    try:
        if path.suffix == ".jsonl":
            model = CandidateRecord if path.name.endswith(CANDIDATES_SUFFIX) else QARecord
            with open(path, "rb") as fh:
                yield from iter_jsonl(fh, source, max_chars, model)
        else:
            records, problems = parse_markdown(path.read_bytes(), source, max_chars)
            yield from records
            yield from problems
    except OSError as exc:
        yield Problem(source, "", None, f"cannot read: {exc.strerror}")


def read_records(path: Path, max_chars: int | None = None) -> tuple[list[QARecord], list[Problem]]:
    """QA records of a `.jsonl` or `.md` file, and the problems found."""
    return _split(iter_records(path, max_chars))
