"""Batch import of reviewed pairs, and the template of pending items handed out for crowdsourcing.

`prefloop import` reads preference pairs in the shapes people arrive with, told apart by their fields:

- prefloop: `{"question", "rejected", "chosen"}` (and "game", "context", "prompt", "id"): the template
  `prefloop template` hands out;
- standard: `{"prompt", "chosen", "rejected"}` as text, TRL's standard preference format and the DPO guide's,
  whose prompt may also be `{"instruction", "input"}`;
- conversational: TRL's conversational format, message lists; without "prompt", the prompt is the messages chosen
  and rejected share (TRL's implicit prompt).

A file is a JSON list or JSON Lines, of one format. It is imported whole or not at all: any invalid entry imports
nothing and the report names each one by index (or line) and field. Fields a format does not read (a dataset's
ids and scores) are ignored and named. Entries that repeat what the queue already has are skipped and reported; an
answer someone already saved is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator

from prefloop_core.contracts import SQL_INT_MAX, ChatMessage, ImportFormat, PairSplit, ReviewItem, Text, check_text
from prefloop_core.ids import Slug
from prefloop_core.jsonlines import json_objects
from prefloop_core.problems import Problem, problems_from
from prefloop_collector.text import identity

SHOWN_PROBLEMS = 50  # a report lists this many; a file wrong throughout says so without a screen per entry


class PromptParts(BaseModel):
    """The DPO guide's prompt format: an instruction and an optional input."""

    model_config = ConfigDict(extra="forbid")
    instruction: Text
    input: str = ""

    def text(self) -> str:
        return self.instruction + (f"\n\n{self.input}" if self.input else "")


def _prompt_form(value: object) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "parts"
    return "messages" if isinstance(value, list) else None


# A prompt is text, the guide's {"instruction", "input"} or messages, told by its JSON type, so that a wrong one
# gets one error in the form it is in (not one per form it might have been); the forms' names leave the error's path.
PROMPT_FORMS = ("text", "parts", "messages")
Prompt = Annotated[
    Annotated[Text, Tag("text")] | Annotated[PromptParts, Tag("parts")] | Annotated[list[ChatMessage], Tag("messages")],
    Discriminator(
        _prompt_form,
        custom_error_type="prompt_type",
        custom_error_message='expected text, {"instruction", "input"} or a list of messages',
    ),
]
TextPrompt = Annotated[
    Annotated[Text, Tag("text")] | Annotated[PromptParts, Tag("parts")],
    Discriminator(
        lambda value: None if isinstance(value, list) else _prompt_form(value),
        custom_error_type="prompt_type",
        custom_error_message='expected text or {"instruction", "input"}',
    ),
]


class ImportEntry(BaseModel):
    """One entry in prefloop's own format, `{"question", "rejected", "chosen"}` plus optional fields; every other
    format's entry becomes one of these."""

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
    prompt: Prompt | None = Field(default=None, description="Overrides the prompt built from the template.")

    def messages(self) -> list[ChatMessage] | None:
        if self.prompt is None or isinstance(self.prompt, list):
            return self.prompt
        text = self.prompt if isinstance(self.prompt, str) else self.prompt.text()
        return [ChatMessage(role="user", content=text)]

    def identity(self) -> str:
        return identity(self.question, self.messages())

    def record_id(self) -> str:
        digest = hashlib.sha256(f"{self.identity()}\x1f{self.rejected}".encode()).hexdigest()[:24]
        return f"import-{digest}"

    def texts(self) -> Iterable[tuple[str, str]]:
        """(field, text) of what a person wrote, for the length limit."""
        yield from (("question", self.question), ("rejected", self.rejected), ("chosen", self.chosen))
        if self.context is not None:
            yield "context", self.context


class StandardEntry(BaseModel):
    """TRL's standard preference format, and the DPO guide's: the prompt as text or `{"instruction", "input"}`."""

    model_config = ConfigDict(extra="ignore")

    prompt: TextPrompt
    chosen: Text
    rejected: Text
    game: Slug | None = None

    def entry(self) -> ImportEntry:
        """The prompt is the user's message as given (no RAG template) and the question reviewers see."""
        question = self.prompt if isinstance(self.prompt, str) else self.prompt.text()
        return ImportEntry.model_construct(
            question=question, rejected=self.rejected, chosen=self.chosen, game=self.game, prompt=self.prompt
        )


class EntryProblem(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ConversationalEntry(BaseModel):
    """TRL's conversational preference format: message lists, the prompt explicit or shared by chosen and rejected."""

    model_config = ConfigDict(extra="ignore")

    prompt: list[ChatMessage] | None = Field(default=None, min_length=1)
    chosen: list[ChatMessage] = Field(min_length=1)
    rejected: list[ChatMessage] = Field(min_length=1)
    game: Slug | None = None

    def entry(self) -> ImportEntry:
        for name in ("prompt", "chosen", "rejected"):
            for index, message in enumerate(getattr(self, name) or []):
                try:
                    check_text(message.content)
                except ValueError as exc:
                    raise EntryProblem(f"{name}.{index}.content", str(exc)) from None
        prompt, chosen, rejected = self.prompt, self.chosen, self.rejected
        if prompt is None:  # TRL's implicit prompt: the messages both conversations begin with
            shared = 0
            while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
                shared += 1
            prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
            if not prompt:
                raise EntryProblem("prompt", 'missing, and chosen and rejected begin differently: give "prompt"')
        if prompt[-1].role != "user":
            raise EntryProblem("prompt", f"its last message is the {prompt[-1].role}'s; it must end with the user's message")
        for name, answer in (("chosen", chosen), ("rejected", rejected)):
            if len(answer) != 1 or answer[0].role != "assistant":
                got = ", ".join(m.role for m in answer) or "nothing"
                raise EntryProblem(name, f"expected one assistant message after the prompt, got {got}")
        return ImportEntry.model_construct(
            question=prompt[-1].content,
            rejected=rejected[0].content,
            chosen=chosen[0].content,
            game=self.game,
            prompt=list(prompt),
        )


FORMATS: dict[ImportFormat, type[StandardEntry | ConversationalEntry | ImportEntry]] = {
    ImportFormat.PREFLOOP: ImportEntry,
    ImportFormat.STANDARD: StandardEntry,
    ImportFormat.CONVERSATIONAL: ConversationalEntry,
}
SHAPES = 'prefloop {"question", "rejected", "chosen"}; standard {"prompt", "chosen", "rejected"} as text; ' + (
    'conversational: "chosen" and "rejected" as message lists'
)


def detect(obj: dict[str, Any]) -> ImportFormat | None:
    """The format an entry is in, by its fields; None when it is in none."""
    if "question" in obj:
        return ImportFormat.PREFLOOP
    answer = obj.get("chosen", obj.get("rejected"))
    if isinstance(answer, list) or isinstance(obj.get("prompt"), list):
        return ImportFormat.CONVERSATIONAL
    if "prompt" in obj or isinstance(answer, str):
        return ImportFormat.STANDARD
    return None


@dataclass
class ParsedImport:
    """What a file holds: its format, its entries when every one is valid, and every problem found."""

    format: ImportFormat | None = None
    entries: list[ImportEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # fields the format does not read, e.g. a dataset's scores

    def problem_lines(self) -> list[str]:
        head = [f"nothing imported: {len(self.problems)} problem(s); fix them and import the file again"]
        lines = [f"  {problem}" for problem in self.problems[:SHOWN_PROBLEMS]]
        if len(self.problems) > SHOWN_PROBLEMS:
            lines.append(f"  ... and {len(self.problems) - SHOWN_PROBLEMS} more")
        return head + lines


@dataclass
class ImportReport:
    split: PairSplit = PairSplit.TRAIN
    imported: int = 0
    unanswered: int = 0
    duplicates: list[tuple[int, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        purpose = " for evaluation" if self.split is PairSplit.EVAL else ""
        out = [f"imported {self.imported} pair(s){purpose}; {len(self.duplicates)} duplicate(s); {self.unanswered} unanswered"]
        out += [f"  item {index}: {reason}" for index, reason in self.duplicates]
        return out


def parse_import(data: bytes, source: str, max_chars: int, fmt: ImportFormat | None = None) -> ParsedImport:
    """Entries of an import file (a JSON list, or JSON Lines); every problem is collected, none stops the reading."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        return ParsedImport(problems=[Problem(source, "", None, f"file is empty; expected a JSON list of pairs: {SHAPES}")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return ParsedImport(problems=[Problem(source, f"line {line}", None, "not valid UTF-8; save the file as UTF-8")])
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            return ParsedImport(
                problems=[Problem(source, f"line {exc.lineno}", None, f"not valid JSON: {exc.msg} at column {exc.colno}")]
            )
        raw = None  # more than one value: JSON Lines
    except RecursionError:
        return ParsedImport(problems=[Problem(source, "", None, "JSON nested too deeply: an entry is one object of text fields")])
    if isinstance(raw, list):
        return read_entries(((f"item {i}", obj) for i, obj in enumerate(raw)), source, max_chars, fmt)
    if raw is None or (isinstance(raw, dict) and "\n" not in text.strip()):
        lines = data.split(b"\n")  # not splitlines(): U+2028 and the like may stand inside a JSON string
        rows = ((row.where, row) if isinstance(row, Problem) else row for row in json_objects(lines, source))
        return read_entries(rows, source, max_chars, fmt)
    return ParsedImport(
        problems=[
            Problem(source, "", None, f"expected a JSON list of entries or JSON Lines (one per line), got {type(raw).__name__}")
        ]
    )


def read_entries(
    rows: Iterable[tuple[str, object]], source: str, max_chars: int, fmt: ImportFormat | None = None
) -> ParsedImport:
    """Entries of one format (`fmt`, or the first recognisable entry's) from `(where, value)` rows; a row that is
    already a Problem (a line that is not JSON) is kept as one."""
    parsed = ParsedImport(format=fmt)
    ignored: set[str] = set()
    for index, (where, obj) in enumerate(rows):
        if isinstance(obj, Problem):
            parsed.problems.append(obj)
            continue
        if not isinstance(obj, dict):
            parsed.problems.append(Problem(source, where, None, f"expected an object, got {type(obj).__name__}", index))
            continue
        found = detect(obj)
        if found is None:
            parsed.problems.append(Problem(source, where, None, f"not a preference pair; expected {SHAPES}", index))
            continue
        parsed.format = parsed.format or found
        if found is not parsed.format:
            first = "--format says" if fmt else "the file's first entry is"
            message = f"is a {found.value} entry but {first} {parsed.format.value}: a file holds one format"
            parsed.problems.append(Problem(source, where, None, message, index))
            continue
        model = FORMATS[parsed.format]
        try:
            valid = model.model_validate(obj)
            entry = valid if isinstance(valid, ImportEntry) else valid.entry()
        except ValidationError as exc:
            parsed.problems.extend(problems_from(exc, source, where, index, PROMPT_FORMS))
            continue
        except EntryProblem as exc:
            parsed.problems.append(Problem(source, where, exc.field, str(exc), index))
            continue
        ignored.update(obj.keys() - model.model_fields.keys())
        too_long = [
            Problem(source, where, name, f"{len(value):,} characters is over the limit of {max_chars:,}", index)
            for name, value in _texts(entry, parsed.format)
            if len(value) > max_chars
        ]
        parsed.problems.extend(too_long)
        if not too_long:
            parsed.entries.append(entry)
    parsed.ignored = sorted(ignored)
    if parsed.problems:
        parsed.entries = []
    return parsed


def _texts(entry: ImportEntry, fmt: ImportFormat) -> Iterable[tuple[str, str]]:
    if fmt is ImportFormat.PREFLOOP:
        yield from entry.texts()
        return
    yield from (("chosen", entry.chosen), ("rejected", entry.rejected))
    for index, message in enumerate(entry.messages() or []):
        yield (f"prompt.{index}.content" if fmt is ImportFormat.CONVERSATIONAL else "prompt"), message.content


def template_entries(items: Sequence[ReviewItem]) -> list[dict[str, object]]:
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
