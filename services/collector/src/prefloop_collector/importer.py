"""Batch import of reviewed pairs, and the template of pending items handed out for crowdsourcing.

A file is imported whole or not at all: any invalid entry imports nothing and the report
names each one by index and field. Entries that repeat what the queue already has are
skipped and reported; an answer someone already saved is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from prefloop_core.contracts import SQL_INT_MAX, ChatMessage, ReviewItem, Text, check_text
from prefloop_core.ids import Slug
from prefloop_core.problems import Problem, problems_from


class PromptParts(BaseModel):
    """The DPO guide's prompt format: an instruction and an optional input."""

    model_config = ConfigDict(extra="forbid")
    instruction: Text
    input: str = ""


class ImportEntry(BaseModel):
    """One entry of an import file: `{"question", "rejected", "chosen"}` plus optional fields."""

    model_config = ConfigDict(extra="forbid")

    id: int | None = Field(default=None, ge=0, le=SQL_INT_MAX, description="Item id, as in an exported template.")
    question: Text
    rejected: Text
    chosen: str = Field(description="The correct answer; empty means not answered yet (skipped).")

    @field_validator("chosen")
    @classmethod
    def _answered_or_empty(cls, value: str) -> str:
        return value if value == "" else check_text(value)

    game: Slug | None = None
    context: str | None = None
    prompt: str | PromptParts | None = Field(default=None, description="Overrides the prompt built from the template.")

    def messages(self) -> list[ChatMessage] | None:
        if self.prompt is None:
            return None
        if isinstance(self.prompt, str):
            return [ChatMessage(role="user", content=self.prompt)]
        text = self.prompt.instruction + (f"\n\n{self.prompt.input}" if self.prompt.input else "")
        return [ChatMessage(role="user", content=text)]

    def record_id(self) -> str:
        digest = hashlib.sha256(f"{self.question}\x1f{self.rejected}".encode()).hexdigest()[:24]
        return f"import-{digest}"


@dataclass
class ImportReport:
    imported: int = 0
    unanswered: int = 0
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    invalid: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.invalid

    def lines(self) -> list[str]:
        if self.invalid:
            head = [f"nothing imported: {len(self.invalid)} problem(s); fix them and import the file again"]
            return head + [f"  {problem}" for problem in self.invalid]
        out = [f"imported {self.imported} pair(s); {len(self.duplicates)} duplicate(s); {self.unanswered} unanswered"]
        out += [f"  item {index}: {reason}" for index, reason in self.duplicates]
        return out


def parse_import(data: bytes, source: str, max_chars: int) -> tuple[list[ImportEntry], list[Problem]]:
    """Entries of an import file (a JSON list); every problem is collected, none stops the reading."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        return [], [Problem(source, "", None, "file is empty; expected a JSON list of {question, rejected, chosen}")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return [], [Problem(source, f"line {line}", None, "not valid UTF-8; save the file as UTF-8")]
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [Problem(source, f"line {exc.lineno}", None, f"not valid JSON: {exc.msg} at column {exc.colno}")]
    except RecursionError:
        return [], [
            Problem(
                source,
                "",
                None,
                'JSON nested too deeply: an entry is one object of text fields, {"question", "rejected", "chosen"}',
            )
        ]
    if not isinstance(raw, list):
        return [], [Problem(source, "", None, f"expected a JSON list of entries, got {type(raw).__name__}")]
    entries: list[ImportEntry] = []
    problems: list[Problem] = []
    for index, obj in enumerate(raw):
        where = f"item {index}"
        if not isinstance(obj, dict):
            problems.append(Problem(source, where, None, f"expected an object, got {type(obj).__name__}"))
            continue
        try:
            entry = ImportEntry.model_validate(obj)
        except ValidationError as exc:
            problems.extend(problems_from(exc, source, where))
            continue
        for name in ("question", "rejected", "chosen", "context"):
            value = getattr(entry, name)
            if value is not None and len(value) > max_chars:
                problems.append(Problem(source, where, name, f"{len(value):,} characters is over the limit of {max_chars:,}"))
        entries.append(entry)
    return entries, problems


def template_entries(items: list[ReviewItem]) -> list[dict[str, object]]:
    """Pending items as import entries with an empty `chosen`, ready to hand out and import back."""
    return [
        {
            "id": item.item_id,
            "question": item.question,
            "game": item.game,
            "context": item.context,
            "rejected": item.rejected[0].answer,
            "chosen": "",
        }
        for item in items
        if item.rejected
    ]
