"""The dataset status block the source prints after every collect: where the data stands."""

from __future__ import annotations

from prefloop_core.contracts import DatasetStatus
from prefloop_collector.contributors import Contributors
from prefloop_collector.queue import ReviewQueue
from prefloop_collector.settings import CollectorSettings


def dataset_status(queue: ReviewQueue, settings: CollectorSettings) -> DatasetStatus:
    counts = queue.counts()
    by_status, per_game = counts.by_status, counts.trainable_by_game
    trainable = sum(per_game.values())
    games = {game: 0.0 for game in settings.collector_games}
    for game, n in per_game.items():
        games[game] = n / trainable
    return DatasetStatus(
        rejected=counts.rejected,
        chosen=by_status.get("chosen", 0),
        pending=by_status.get("pending", 0),
        skipped=by_status.get("skipped", 0),
        deleted=by_status.get("deleted", 0),
        trainable_pairs=trainable,
        eval_pairs=counts.eval_pairs,
        target=settings.collector_target_pairs,
        recommended_min=settings.collector_warn_pairs,
        progress=min(trainable / settings.collector_target_pairs, 1.0),
        games=games,
        contributors=Contributors(queue, settings).stats(),
    )


def progress_bar(fraction: float, width: int = 20) -> str:
    filled = round(fraction * width)
    return "[" + "#" * filled + "." * (width - filled) + f"] {fraction:.0%}"


def render_status(status: DatasetStatus) -> str:
    shares = " · ".join(f"{game} {share:.0%}" for game, share in status.games.items()) or "no pairs yet"
    return "\n".join(
        [
            "Dataset status",
            f"  rejected answers   {status.rejected:>6}",
            f"  chosen (reviewed)  {status.chosen:>6}",
            f"  pending review     {status.pending:>6}",
            f"  skipped            {status.skipped:>6}",
            f"  deleted            {status.deleted:>6}",
            f"  trainable pairs    {status.trainable_pairs:>6} of {status.target} "
            f"{progress_bar(status.progress)}  (at least {status.recommended_min} for a useful run)",
            f"  per game           {shares}",
        ]
        + ([f"  for evaluation     {status.eval_pairs:>6} (imported with --split eval)"] if status.eval_pairs else [])
        + contributor_lines(status)
    )


def contributor_lines(status: DatasetStatus) -> list[str]:
    if not status.contributors:
        return []
    lines = ["Contributors       answers  pending  accepted  not chosen  set aside  agreement"]
    for c in status.contributors:
        agreement = f"{c.agreement:.0%}" if c.agreement is not None else "-"
        name = c.name + (" (revoked)" if c.revoked else "")
        lines.append(
            f"  {name:<17}{c.answers:>8}{c.pending:>9}{c.accepted:>10}{c.not_chosen:>12}{c.set_aside:>11}{agreement:>11}"
        )
    return lines
