"""Scoring an answer: key-fact recall (default), and optional embedding similarity or an LLM judge.

Key-fact matching normalises both sides the same way (Unicode NFKC, case folding, punctuation
to spaces). A fact written in Hangul or CJK is matched as a substring with spaces removed,
because Korean attaches particles to nouns ("고양이를" contains "고양이"); a Latin-script fact
must match whole words, so "cat" is not found in "category". `a|b` in a fact accepts either.
"""

from __future__ import annotations

import math
import re
import unicodedata

_WORD_EDGE = re.compile(r"\s+")


def _is_cjk(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return name.startswith(("HANGUL", "CJK", "HIRAGANA", "KATAKANA"))


def normalize(text: str) -> str:
    """NFKC, case-folded, punctuation and symbols turned into spaces, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    spaced = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in folded)
    return _WORD_EDGE.sub(" ", spaced).strip()


def fact_found(answer: str, fact: str) -> bool:
    target = normalize(answer)
    for alternative in fact.split("|"):
        wanted = normalize(alternative)
        if not wanted:
            continue
        if any(_is_cjk(ch) for ch in wanted):
            if wanted.replace(" ", "") in target.replace(" ", ""):
                return True
        elif re.search(rf"(?<![^\W_]){re.escape(wanted)}(?![^\W_])", target):
            return True
    return False


def key_fact_recall(answer: str, key_facts: list[str]) -> float:
    """Share of the key facts the answer contains (1.0 when there are none to check)."""
    if not key_facts:
        return 1.0
    return sum(fact_found(answer, fact) for fact in key_facts) / len(key_facts)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 0.0 if norm == 0 else max(0.0, min(1.0, dot / norm))


JUDGE_PROMPT = (
    "You grade answers of a game wiki assistant.\nQuestion: {question}\nReference answer: {reference}\n"
    "Facts a correct answer contains: {facts}\nAnswer to grade: {answer}\n\n"
    'Reply with JSON only: {{"score": <0-10>, "reason": "<one sentence>"}}'
)


def parse_judge_score(text: str) -> float | None:
    """The judge's score in [0, 1] from its reply, or None if it gave none."""
    match = re.search(r'"score"\s*:\s*(\d+(?:\.\d+)?)', text) or re.search(r"\b(\d+(?:\.\d+)?)\s*/\s*10\b", text)
    if not match:
        return None
    return max(0.0, min(1.0, float(match.group(1)) / 10))
