"""Text rules the collector applies everywhere: what makes two questions the same, what a threshold is."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from prefloop_core.contracts import ChatMessage

_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Unicode NFC, case-folded, whitespace collapsed: '  Creeper는\\n무엇?' == 'creeper는 무엇?'."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip().casefold()


def identity(question: str, prompt: Sequence[ChatMessage] | None) -> str:
    """What tells two items apart: the question, or the whole conversation when the prompt holds more than the
    question's message (two conversations can end in the same question)."""
    if prompt is None or len(prompt) < 2:
        return question
    return "\n".join(f"{m.role}: {m.content}" for m in prompt)


def question_key(question: str, game: str | None) -> str:
    """Identity of a question in the queue: the same normalized question for the same game."""
    return f"{game or ''}\x1f{normalize(question)}"


def parse_threshold(text: str) -> float:
    """`45%`, `0.45` and `45` all mean 0.45; raises ValueError with what is accepted."""
    raw = text.strip()
    try:
        value = float(raw.removesuffix("%"))
    except ValueError:
        raise ValueError(f"threshold {text!r} is not a number; write 70%, 0.7 or 70") from None
    if raw.endswith("%") or value > 1:
        value /= 100
    if not 0 <= value <= 1:
        raise ValueError(f"threshold {text!r} is outside 0-100%")
    return value
