"""Pre-training checks: pure functions over the pairs a snapshot would hold, each with a verdict."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from difflib import SequenceMatcher

from prefloop_core.contracts import CheckResult, PairSplit, Verdict
from prefloop_collector.settings import CollectorSettings
from prefloop_collector.text import normalize

NEAR_EQUAL = 0.95  # chosen and rejected this similar teach nothing


@dataclass(frozen=True)
class Candidate:
    """A pair as the checks see it."""

    item_id: int
    question: str  # what tells it apart: the question, or its whole conversation (text.identity)
    game: str | None
    chosen: str
    rejected: str
    split: PairSplit = PairSplit.TRAIN


def _result(name: str, failed: bool, settings: CollectorSettings, detail: str, warn: bool = False) -> CheckResult:
    hard = name in settings.collector_hard_checks
    verdict = Verdict.PASS
    if failed:
        verdict = Verdict.FAIL if hard else Verdict.WARN
    elif warn:
        verdict = Verdict.WARN
    return CheckResult(name=name, verdict=verdict, hard=hard, detail=detail)


def _items(ids: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _training(pairs: list[Candidate]) -> list[Candidate]:
    return [p for p in pairs if p.split is PairSplit.TRAIN]


def min_pairs(pairs: list[Candidate], settings: CollectorSettings) -> CheckResult:
    """Counts the pairs to train on; an evaluation file's pairs are not trained on."""
    n, hard_min, warn_min = len(_training(pairs)), settings.collector_min_pairs, settings.collector_warn_pairs
    if n < hard_min:
        detail = f"{n} pairs; at least {hard_min} are needed (review more with `prefloop review`)"
    elif n < warn_min:
        detail = f"{n} pairs; {warn_min}+ recommended for a useful run"
    else:
        detail = f"{n} pairs"
    return _result("min_pairs", n < hard_min, settings, detail, warn=n < warn_min)


def duplicate_questions(pairs: list[Candidate], settings: CollectorSettings) -> CheckResult:
    groups: dict[str, list[int]] = defaultdict(list)
    for pair in pairs:
        groups[normalize(pair.question)].append(pair.item_id)
    dupes = [ids for ids in groups.values() if len(ids) > 1]
    detail = "; ".join(f"items {_items(ids)} ask the same question" for ids in dupes[:5]) or "no duplicates"
    return _result("duplicate_questions", bool(dupes), settings, detail)


def chosen_vs_rejected(pairs: list[Candidate], settings: CollectorSettings) -> CheckResult:
    same = [p.item_id for p in pairs if SequenceMatcher(None, normalize(p.chosen), normalize(p.rejected)).ratio() >= NEAR_EQUAL]
    detail = f"items {_items(same)}: chosen is (nearly) the rejected answer" if same else "all chosen answers differ"
    return _result("chosen_vs_rejected", bool(same), settings, detail)


def answer_length(pairs: list[Candidate], settings: CollectorSettings) -> CheckResult:
    limit = settings.collector_max_text_chars
    bad = [
        p.item_id
        for p in pairs
        if not p.chosen.strip() or not p.rejected.strip() or len(p.chosen) > limit or len(p.rejected) > limit
    ]
    detail = f"items {_items(bad)}: empty or over {limit:,} characters" if bad else "all answers non-empty and in bounds"
    return _result("answer_length", bool(bad), settings, detail)


def game_balance(pairs: list[Candidate], settings: CollectorSettings) -> CheckResult:
    """Shares of the main games among the pairs to train on; pairs without a game (imported ones) are a group of
    their own, shown beside them."""
    training = _training(pairs)
    counts = Counter(p.game for p in training)
    total = max(len(training), 1)
    shares = {game: counts.get(game, 0) / total for game in settings.collector_games}
    low = [g for g, share in shares.items() if share < settings.collector_min_game_share]
    detail = " · ".join(f"{g} {share:.0%}" for g, share in shares.items())
    others = sum(n for game, n in counts.items() if game not in shares)
    if counts[None]:
        detail += f" · no game {counts[None] / total:.0%} (a group of its own)"
    if others > counts[None]:
        detail += f" · other games {(others - counts[None]) / total:.0%}"
    if low:
        detail += f"; under {settings.collector_min_game_share:.0%}: {', '.join(low)}"
    return _result("game_balance", bool(low), settings, detail)


ALL_CHECKS = (min_pairs, duplicate_questions, chosen_vs_rejected, answer_length, game_balance)


def run_checks(pairs: list[Candidate], settings: CollectorSettings) -> list[CheckResult]:
    return [check(pairs, settings) for check in ALL_CHECKS]


def blocking(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.verdict is Verdict.FAIL and r.hard]
