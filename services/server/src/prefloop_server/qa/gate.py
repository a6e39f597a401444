"""The QA gate: the same QA set on the live model and the candidate, compared question by question.

The verdict is a pure function of the two runs' records and the rule, so it is tested without
servers. Default rule: the candidate must beat the live model by at least 0.03 accuracy, and at
most 6 questions the live model answered correctly may regress.

The defaults come from measured noise (benchmarks/qa_noise.py, results in
benchmarks/results/effectiveness.md): the same model asked the same 72 questions with the server's
defaults (4 sequences decoded in one batch) moved by up to 2.8 points between runs, so a margin under
3 points would let noise decide; and a change that teaches nothing (the same weights quantized as
Q4_K_M instead of Q4_1) already turned 6 of the 72 right answers wrong, so a candidate is held to
account for more regressions than that, not for the churn any change of weights brings.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from prefloop_core.contracts import QARecord


SPLIT_NAMES = {"train": "trained", "heldout": "held out"}
DEFAULT_MIN_DELTA = 0.03
DEFAULT_MAX_REGRESSIONS = 6


class GateRule(BaseModel):
    min_delta: float = Field(default=DEFAULT_MIN_DELTA, description="Candidate accuracy must be at least live + this.")
    max_regressions: int = Field(default=DEFAULT_MAX_REGRESSIONS, ge=0,
                                 description="Most live-correct questions the candidate may get wrong.")
    correct_at: float = Field(default=0.7, ge=0, le=1, description="A score at or above this counts as correct.")


class QuestionResult(BaseModel):
    question_id: str
    game: str | None
    split: str | None
    live: float | None
    candidate: float | None

    @property
    def change(self) -> float:
        return (self.candidate or 0.0) - (self.live or 0.0)


class GateVerdict(BaseModel):
    live_model: str
    candidate_model: str
    live_accuracy: float
    candidate_accuracy: float
    delta: float
    wins: list[str] = Field(description="Questions the candidate scored higher on.")
    losses: list[str] = Field(description="Questions the candidate scored lower on.")
    regressions: list[str] = Field(description="Questions correct on live and not on the candidate.")
    fixed: list[str] = Field(description="Questions wrong on live and correct on the candidate.")
    per_game: dict[str, tuple[float, float]]
    per_split: dict[str, tuple[float, float]]
    questions: list[QuestionResult]
    rule: GateRule
    accepted: bool
    reasons: list[str]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def compare(live: list[QARecord], candidate: list[QARecord], rule: GateRule | None = None) -> GateVerdict:
    """Compare per question; a question one side failed to answer counts as 0 for that side."""
    rule = rule or GateRule()
    live_by = {r.question_id: r for r in live}
    cand_by = {r.question_id: r for r in candidate}
    ids = list(dict.fromkeys([*live_by, *cand_by]))
    results = []
    for qid in ids:
        meta = live_by.get(qid) or cand_by[qid]
        results.append(QuestionResult(
            question_id=qid, game=meta.game, split=meta.split,
            live=live_by[qid].score if qid in live_by else None,
            candidate=cand_by[qid].score if qid in cand_by else None,
        ))
    live_acc = _mean([r.live or 0.0 for r in results])
    cand_acc = _mean([r.candidate or 0.0 for r in results])
    ok = rule.correct_at
    regressions = [r.question_id for r in results if (r.live or 0) >= ok > (r.candidate or 0)]
    fixed = [r.question_id for r in results if (r.candidate or 0) >= ok > (r.live or 0)]

    def grouped(key: str) -> dict[str, tuple[float, float]]:
        groups: dict[str, list[QuestionResult]] = {}
        for r in results:
            groups.setdefault(getattr(r, key) or "other", []).append(r)
        return {g: (_mean([r.live or 0 for r in rs]), _mean([r.candidate or 0 for r in rs])) for g, rs in sorted(groups.items())}

    delta = cand_acc - live_acc
    reasons = []
    if delta < rule.min_delta - 1e-9:
        reasons.append(f"accuracy {cand_acc:.1%} is not at least live {live_acc:.1%} + {rule.min_delta:.1%} (delta {delta:+.1%})")
    if len(regressions) > rule.max_regressions:
        reasons.append(f"{len(regressions)} previously correct questions regress (at most {rule.max_regressions}): "
                       + ", ".join(regressions[:10]))
    return GateVerdict(
        live_model=(live[0].model if live else "live"), candidate_model=(candidate[0].model if candidate else "candidate"),
        live_accuracy=live_acc, candidate_accuracy=cand_acc, delta=delta,
        wins=[r.question_id for r in results if r.change > 1e-9],
        losses=[r.question_id for r in results if r.change < -1e-9],
        regressions=regressions, fixed=fixed, per_game=grouped("game"), per_split=grouped("split"),
        questions=results, rule=rule, accepted=not reasons, reasons=reasons or ["candidate wins"],
    )


def question_classes(verdict: GateVerdict) -> dict[str, tuple[float, float]]:
    """(live, candidate) accuracy per question class, trained first, by the names people read."""
    order = [*SPLIT_NAMES, *sorted(set(verdict.per_split) - set(SPLIT_NAMES) - {"other"})]
    return {SPLIT_NAMES.get(k, k): verdict.per_split[k] for k in order if k in verdict.per_split}


def markdown(verdict: GateVerdict) -> str:
    v = verdict
    head = "ACCEPTED" if v.accepted else "REFUSED"
    lines = [
        f"## QA gate: {head}",
        "",
        f"- live: `{v.live_model}` · candidate: `{v.candidate_model}`",
        f"- rule: candidate >= live + {v.rule.min_delta:.2f}, at most {v.rule.max_regressions} regressions "
        f"(correct = score >= {v.rule.correct_at:.2f})",
        *[f"- {reason}" for reason in v.reasons],
        "",
        "| | live | candidate | delta |",
        "| --- | ---: | ---: | ---: |",
        f"| **overall** | {v.live_accuracy:.1%} | {v.candidate_accuracy:.1%} | {v.delta:+.1%} |",
        *[f"| {g} | {a:.1%} | {b:.1%} | {b - a:+.1%} |" for g, (a, b) in v.per_game.items()],
        *[f"| {name} questions | {a:.1%} | {b:.1%} | {b - a:+.1%} |" for name, (a, b) in question_classes(v).items()],
        "",
        f"wins {len(v.wins)} · losses {len(v.losses)} · fixed {len(v.fixed)} · regressions {len(v.regressions)}",
    ]
    if v.regressions:
        lines += ["", "Regressions (correct on live, wrong on the candidate):", "",
                  "| question | game | live | candidate |", "| --- | --- | ---: | ---: |"]
        by_id = {q.question_id: q for q in v.questions}
        lines += [f"| {qid} | {by_id[qid].game or ''} | {by_id[qid].live or 0:.2f} | {by_id[qid].candidate or 0:.2f} |"
                  for qid in v.regressions]
    return "\n".join(lines) + "\n"


def chart_png(verdict: GateVerdict) -> bytes:
    """Before/after bars, live vs candidate: overall and per game on the left, per question class (trained /
    held out) on the right, each bar labelled with its accuracy."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"per game": {"overall": (verdict.live_accuracy, verdict.candidate_accuracy), **verdict.per_game}}
    classes = question_classes(verdict)
    if classes:
        panels["per question class"] = classes
    fig, axes = plt.subplots(1, len(panels), figsize=(4 + 1.2 * sum(map(len, panels.values())), 3.8), dpi=110,
                             gridspec_kw={"width_ratios": [len(g) for g in panels.values()]}, squeeze=False)
    colour = "#2f9e44" if verdict.accepted else "#e03131"
    for ax, (title, groups) in zip(axes[0], panels.items(), strict=True):
        labels, xs = list(groups), range(len(groups))
        for offset, side, label, fill in ((-0.2, 0, f"live ({verdict.live_model})", "#adb5bd"),
                                          (0.2, 1, f"candidate ({verdict.candidate_model})", colour)):
            bars = ax.bar([x + offset for x in xs], [groups[k][side] for k in labels], 0.4, label=label, color=fill)
            ax.bar_label(bars, [f"{groups[k][side]:.0%}" for k in labels], fontsize=7, padding=1)
        ax.set_xticks(list(xs), labels, rotation=15)
        ax.set_ylim(0, 1.1)
        ax.set_title(title, fontsize=10)
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(loc="upper left", fontsize=7)
    fig.suptitle(f"QA gate: {'accepted' if verdict.accepted else 'refused'} (delta {verdict.delta:+.1%}, "
                 f"regressions: {len(verdict.regressions)})", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
