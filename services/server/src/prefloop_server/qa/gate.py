"""The QA gate: the same QA set on the live model and the candidate, compared question by question.

The verdict is a pure function of the two runs' records and the rule, so it is tested without servers, and the live
gate (`/admin/gate`), the flows (through it) and `prefloop gate` offline all decide with `compare`.

The default rule (`mcnemar`) decides on the paired outcomes of the same questions. A question is *correct* when its
score is at least `correct_at`; what moves is the *discordant* questions: fixed (wrong on live, correct on the
candidate) and regressed (the other way). If the candidate were no better than live, each discordant question would
be either with even odds, so the candidate is accepted only when at least as many fixed as it shows would happen by
chance with probability below `alpha` (McNemar's exact test, one-sided: a binomial test on the discordant questions).
The held-out questions, never trained on, must not be worse beyond chance (the same test the other way, at
`heldout_alpha`) nor drop by more than `max_heldout_drop` in mean score; and a question marked `protected` in the QA
set must not regress at all. Partial scores enter the test as right or wrong by `correct_at`; the accuracy shown, its
change and that change's interval (a paired t interval over the questions) are mean scores, and every question whose
score moved is listed with both scores.

Why not a count: a change that teaches nothing (the same weights quantized otherwise) turned 3-9 right answers wrong
and 6-9 wrong answers right (benchmarks/results/effectiveness.md); a fixed limit on regressions then accepts such a
no-op when it nets a few points and refuses a real improvement with one regression too many. The first rule (a margin
of `min_delta` and at most `max_regressions` regressions) stays available as `method: count`. The error rates of both,
measured on candidates whose truth is known: benchmarks/results/gate.md.
"""

from __future__ import annotations

from scipy import stats

from prefloop_core.contracts import (
    Drift,
    GateCheck,
    GateMethod,
    GateRule,
    GateVerdict,
    QARecord,
    QuestionResult,
    SplitTest,
)

SPLIT_NAMES = {"train": "trained", "heldout": "held out"}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def exact_p(successes: int, trials: int) -> float:
    """P(at least `successes` of `trials` | even odds): the one-sided exact (McNemar) test; 1 when nothing changed."""
    return float(stats.binomtest(successes, trials, 0.5, alternative="greater").pvalue) if trials else 1.0


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def delta_interval(changes: list[float], live_accuracy: float, confidence: float) -> tuple[float, float]:
    """The paired t interval of the mean score change, within what is possible from `live_accuracy` (the t interval
    of a few questions can reach past +-100 points); degenerate when every question changed alike."""
    mean = _mean(changes)
    if len(changes) < 2 or max(changes) == min(changes):
        return (mean, mean)
    low, high = stats.ttest_1samp(changes, 0.0).confidence_interval(confidence)
    return (max(float(low), -live_accuracy), min(float(high), 1.0 - live_accuracy))


def _pair(results: list[QuestionResult], correct_at: float) -> tuple[list[str], list[str]]:
    fixed = [r.question_id for r in results if (r.candidate or 0) >= correct_at > (r.live or 0)]
    regressed = [r.question_id for r in results if (r.live or 0) >= correct_at > (r.candidate or 0)]
    return fixed, regressed


def _heldout(results: list[QuestionResult], rule: GateRule) -> SplitTest | None:
    held = [r for r in results if r.split == "heldout"]
    if not held:
        return None
    fixed, regressed = _pair(held, rule.correct_at)
    return SplitTest(
        questions=len(held),
        live_accuracy=_mean([r.live or 0 for r in held]),
        candidate_accuracy=_mean([r.candidate or 0 for r in held]),
        fixed=len(fixed),
        regressed=len(regressed),
        p_worse=exact_p(len(regressed), len(fixed) + len(regressed)),
    )


def _mcnemar_checks(n_fixed: int, n_regressed: int, p: float, heldout: SplitTest | None, rule: GateRule) -> list[GateCheck]:
    if n_fixed + n_regressed == 0:
        better = GateCheck(
            name="better",
            passed=False,
            text="no question went from wrong to right or back: nothing shows the candidate is better",
        )
    elif p < rule.alpha:
        better = GateCheck(
            name="better",
            passed=True,
            text=f"{n_fixed} fixed against {n_regressed} regressed: better "
            f"beyond chance ({p_text(p)}, needs below {rule.alpha:g})",
        )
    else:
        better = GateCheck(
            name="better",
            passed=False,
            text=f"{n_fixed} fixed against {n_regressed} regressed: not "
            f"better beyond chance ({p_text(p)}, needs below {rule.alpha:g})",
        )
    checks = [better]
    if heldout is None:
        checks.append(
            GateCheck(name="held-out", passed=True, text="no held-out questions in this QA set: nothing measures generalisation")
        )
        return checks
    h = heldout
    drop = h.live_accuracy - h.candidate_accuracy
    moved = (
        f"held out ({h.questions} questions): {h.live_accuracy:.1%} -> {h.candidate_accuracy:.1%}, "
        f"{h.fixed} fixed, {h.regressed} regressed"
    )
    if h.p_worse < rule.heldout_alpha:
        checks.append(
            GateCheck(
                name="held-out",
                passed=False,
                text=f"{moved}: worse beyond chance ({p_text(h.p_worse)}, refused below {rule.heldout_alpha:g})",
            )
        )
    elif drop > rule.max_heldout_drop + 1e-9:
        checks.append(
            GateCheck(
                name="held-out",
                passed=False,
                text=f"{moved}: a drop of {100 * drop:.1f} points, more than the {100 * rule.max_heldout_drop:.1f} allowed",
            )
        )
    else:
        checks.append(
            GateCheck(
                name="held-out",
                passed=True,
                text=f"{moved}: not worse beyond chance "
                f"({p_text(h.p_worse)}) and within the {100 * rule.max_heldout_drop:.1f}-point drop allowed",
            )
        )
    return checks


def _count_checks(delta: float, live_acc: float, cand_acc: float, regressions: list[str], rule: GateRule) -> list[GateCheck]:
    margin = delta >= rule.min_delta - 1e-9
    few = len(regressions) <= rule.max_regressions
    return [
        GateCheck(
            name="margin",
            passed=margin,
            text=f"accuracy {cand_acc:.1%} {'is' if margin else 'is not'} at least "
            f"live {live_acc:.1%} + {rule.min_delta:.1%} (delta {delta:+.1%})",
        ),
        GateCheck(
            name="regressions",
            passed=few,
            text=f"{len(regressions)} previously correct questions regress "
            f"(at most {rule.max_regressions})" + (f": {', '.join(regressions[:10])}" if regressions else ""),
        ),
    ]


def compare(live: list[QARecord], candidate: list[QARecord], rule: GateRule | None = None) -> GateVerdict:
    """Compare per question; a question one side failed to answer counts as 0 for that side (the live gate never gets
    that far: a slot that stops answering ends it with an error)."""
    rule = rule or GateRule()
    live_by = {r.question_id: r for r in live}
    cand_by = {r.question_id: r for r in candidate}
    results = []
    for qid in dict.fromkeys([*live_by, *cand_by]):
        meta = live_by.get(qid) or cand_by[qid]
        results.append(
            QuestionResult(
                question_id=qid,
                game=meta.game,
                split=meta.split,
                protected=any(r.protected for r in (live_by.get(qid), cand_by.get(qid)) if r is not None),
                live=live_by[qid].score if qid in live_by else None,
                candidate=cand_by[qid].score if qid in cand_by else None,
            )
        )
    live_acc = _mean([r.live or 0.0 for r in results])
    cand_acc = _mean([r.candidate or 0.0 for r in results])
    delta = cand_acc - live_acc
    fixed, regressions = _pair(results, rule.correct_at)
    p = exact_p(len(fixed), len(fixed) + len(regressions))
    heldout = _heldout(results, rule)
    protected = [r.question_id for r in results if r.protected and r.question_id in regressions]

    def grouped(key: str) -> dict[str, tuple[float, float]]:
        groups: dict[str, list[QuestionResult]] = {}
        for r in results:
            groups.setdefault(getattr(r, key) or "other", []).append(r)
        return {g: (_mean([r.live or 0 for r in rs]), _mean([r.candidate or 0 for r in rs])) for g, rs in sorted(groups.items())}

    if rule.method is GateMethod.COUNT:
        checks = _count_checks(delta, live_acc, cand_acc, regressions, rule)
    else:
        checks = _mcnemar_checks(len(fixed), len(regressions), p, heldout, rule)
    if protected:
        checks.append(GateCheck(name="protected", passed=False, text=f"protected question(s) regress: {', '.join(protected)}"))
    return GateVerdict(
        live_model=(live[0].model if live else "live"),
        candidate_model=(candidate[0].model if candidate else "candidate"),
        live_accuracy=live_acc,
        candidate_accuracy=cand_acc,
        delta=delta,
        delta_interval=delta_interval([r.change for r in results], live_acc, rule.confidence),
        fixed=fixed,
        regressions=regressions,
        wins=[r.question_id for r in results if r.change > 1e-9],
        losses=[r.question_id for r in results if r.change < -1e-9],
        p_value=p,
        heldout=heldout,
        protected_regressions=protected,
        per_game=grouped("game"),
        per_split=grouped("split"),
        questions=results,
        rule=rule,
        checks=checks,
        accepted=all(c.passed for c in checks),
    )


def question_classes(verdict: GateVerdict) -> dict[str, tuple[float, float]]:
    """(live, candidate) accuracy per question class, trained first, by the names people read."""
    order = [*SPLIT_NAMES, *sorted(set(verdict.per_split) - set(SPLIT_NAMES) - {"other"})]
    return {SPLIT_NAMES.get(k, k): verdict.per_split[k] for k in order if k in verdict.per_split}


def rule_text(rule: GateRule) -> str:
    if rule.method is GateMethod.COUNT:
        return (
            f"count: candidate >= live + {rule.min_delta:.2f}, at most {rule.max_regressions} regressions "
            f"(correct = score >= {rule.correct_at:.2f})"
        )
    return (
        f"mcnemar: better beyond chance at {rule.alpha:g} (exact test on the questions that changed, correct = "
        f"score >= {rule.correct_at:.2f}); held out not worse beyond chance at {rule.heldout_alpha:g} and down "
        f"{100 * rule.max_heldout_drop:.0f} points at most; no protected question regresses"
    )


def drift_text(drift: Drift) -> str:
    """One line for the report: the overall figure, per split, and on the questions live answers right."""
    parts = [f"{split} {kl:.3f}" for split, kl in drift.per_split.items()]
    if drift.live_correct_kl is not None:
        parts.append(f"questions live answers right {drift.live_correct_kl:.3f}")
    return (
        f"drift: mean per-token KL(live || candidate) {drift.mean_kl:.3f} nats on live's answers "
        f"({', '.join(parts)}; {drift.tokens} tokens, first {drift.max_tokens} of each answer)"
    )


def _outcome(q: QuestionResult, correct_at: float) -> str:
    before, after = (q.live or 0) >= correct_at, (q.candidate or 0) >= correct_at
    if before != after:
        return "**fixed**" if after else "**regressed**"
    return "better" if q.change > 0 else "worse"


def markdown(verdict: GateVerdict) -> str:
    v = verdict
    low, high = v.delta_interval
    lines = [
        f"## QA gate: {'ACCEPTED' if v.accepted else 'REFUSED'}",
        "",
        f"- live: `{v.live_model}` · candidate: `{v.candidate_model}`",
        f"- rule: {rule_text(v.rule)}",
        *[f"- {'passed' if c.passed else '**failed**'}: {c.text}" for c in v.checks],
        f"- accuracy (mean score) {v.live_accuracy:.1%} -> {v.candidate_accuracy:.1%}: {100 * v.delta:+.1f} points, "
        f"{v.rule.confidence:.0%} interval {100 * low:+.1f} to {100 * high:+.1f}",
        "",
        "| | live | candidate | delta |",
        "| --- | ---: | ---: | ---: |",
        f"| **overall** | {v.live_accuracy:.1%} | {v.candidate_accuracy:.1%} | {v.delta:+.1%} |",
        *[f"| {g} | {a:.1%} | {b:.1%} | {b - a:+.1%} |" for g, (a, b) in v.per_game.items()],
        *[f"| {name} questions | {a:.1%} | {b:.1%} | {b - a:+.1%} |" for name, (a, b) in question_classes(v).items()],
        "",
        f"fixed {len(v.fixed)} · regressed {len(v.regressions)} · scored higher {len(v.wins)} · scored lower "
        f"{len(v.losses)} · one-sided exact test {p_text(v.p_value)}",
    ]
    if v.drift is not None:
        right = sorted(
            (q for q in v.questions if (q.live or 0) >= v.rule.correct_at and q.kl is not None), key=lambda q: -(q.kl or 0)
        )
        lines += ["", f"{drift_text(v.drift)}."]
        if right:
            lines.append(
                "Most moved among the questions live answers right (KL, nats/token): "
                + ", ".join(
                    f"{q.question_id} {q.kl:.3f}{' (regressed)' if q.question_id in v.regressions else ''}" for q in right[:5]
                )
            )
    moved = [q for q in v.questions if abs(q.change) > 1e-9]
    if moved:
        order = {"**regressed**": 0, "**fixed**": 1, "worse": 2, "better": 3}
        moved.sort(key=lambda q: (order[_outcome(q, v.rule.correct_at)], q.question_id))
        kl = v.drift is not None
        lines += [
            "",
            f"Questions whose score moved (correct = score >= {v.rule.correct_at:.2f}):",
            "",
            f"| question | game | split | live | candidate | outcome |{' KL |' if kl else ''}",
            f"| --- | --- | --- | ---: | ---: | --- |{' ---: |' if kl else ''}",
        ]
        lines += [
            f"| {q.question_id}{' (protected)' if q.protected else ''} | {q.game or ''} | {q.split or ''} | "
            f"{q.live or 0:.2f} | {q.candidate or 0:.2f} | {_outcome(q, v.rule.correct_at)} |"
            + (f" {q.kl:.3f} |" if q.kl is not None else " |" if kl else "")
            for q in moved
        ]
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
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(4 + 1.2 * sum(map(len, panels.values())), 3.8),
        dpi=110,
        gridspec_kw={"width_ratios": [len(g) for g in panels.values()]},
        squeeze=False,
    )
    colour = "#2f9e44" if verdict.accepted else "#e03131"
    for ax, (title, groups) in zip(axes[0], panels.items(), strict=True):
        labels, xs = list(groups), range(len(groups))
        for offset, side, label, fill in (
            (-0.2, 0, f"live ({verdict.live_model})", "#adb5bd"),
            (0.2, 1, f"candidate ({verdict.candidate_model})", colour),
        ):
            bars = ax.bar([x + offset for x in xs], [groups[k][side] for k in labels], 0.4, label=label, color=fill)
            ax.bar_label(bars, [f"{groups[k][side]:.0%}" for k in labels], fontsize=7, padding=1)
        ax.set_xticks(list(xs), labels, rotation=15)
        ax.set_ylim(0, 1.1)
        ax.set_title(title, fontsize=10)
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(loc="upper left", fontsize=7)
    low, high = verdict.delta_interval
    fig.suptitle(
        f"QA gate: {'accepted' if verdict.accepted else 'refused'} · {len(verdict.fixed)} fixed, "
        f"{len(verdict.regressions)} regressed, {p_text(verdict.p_value)} · delta {100 * verdict.delta:+.1f} pts "
        f"({verdict.rule.confidence:.0%}: {100 * low:+.1f} to {100 * high:+.1f})",
        fontsize=10,
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
