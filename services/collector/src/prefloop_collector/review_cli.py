"""`prefloop review`: the source's interactive review, one item at a time, every answer saved at once.

    [1/45] minecraft · pending · item 12
    Question ...  Context ...  Existing answer (accuracy 33%) ...
    1 write the correct answer   2 skip   3 delete   q quit

Text is laid out by rich, which measures wide (Korean) characters as two cells, so wrapped
lines and indents line up. `--web` serves the review UI and API instead.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from prefloop_core.contracts import ReviewItem, ReviewStatus
from prefloop_collector import args as argtypes
from prefloop_collector.queue import Conflict, Filters, ReviewQueue
from prefloop_collector.settings import CollectorSettings


def _parser(settings: CollectorSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefloop review",
        description="Review queued answers one at a time: write the correct answer, skip, or delete the question. "
        "Each answer is saved the moment you finish it.",
    )
    parser.add_argument("--game", type=argtypes.name, help="only this game")
    parser.add_argument(
        "--status", choices=[s.value for s in ReviewStatus], default="pending", help="which items (default: pending)"
    )
    parser.add_argument("--min-score", type=argtypes.threshold, help="only answers scoring at least this (e.g. 20%%)")
    parser.add_argument("--max-score", type=argtypes.threshold, help="only answers scoring at most this")
    parser.add_argument(
        "--reviewer", type=argtypes.name, default=None, help="your name, stored on every pair you write (default: your user name)"
    )
    parser.add_argument("--web", action="store_true", help="serve the web review UI and the API instead")
    parser.add_argument("--host", default=settings.collector_host, help="with --web: address (default %(default)s)")
    parser.add_argument("--port", type=int, default=settings.collector_port, help="with --web: port (default %(default)s)")
    return parser


def _block(console: Console, title: str, body: str, style: str = "") -> None:
    console.print(Text(title, style="bold"))
    console.print(Padding(Text(body, style=style), (0, 0, 0, 2)))


def show(console: Console, item: ReviewItem, position: int, total: int) -> None:
    console.print()
    console.print(
        Text(f"[{position}/{total}] {item.game or 'no game'} · {item.status.value} · item {item.item_id}", style="bold cyan")
    )
    _block(console, "Question", item.question)
    if item.context:
        _block(console, "Context", item.context, style="dim")
    worst = item.rejected[0] if item.rejected else None
    if worst is not None:
        more = f", {len(item.rejected) - 1} more bad answer(s)" if len(item.rejected) > 1 else ""
        _block(console, f"Existing answer (accuracy {worst.score:.0%}, {worst.model}{more})", worst.answer, style="red")
    if item.chosen:
        _block(console, f"Correct answer so far (by {item.reviewer})", item.chosen, style="green")
    elif item.suggestion:
        _block(
            console,
            f"Suggested answer (a sample that scored {item.suggestion_score or 0:.0%}; check it)",
            item.suggestion,
            style="yellow",
        )
    accept = "   4 accept the suggestion" if item.suggestion and not item.chosen else ""
    console.print(f"  1 write the correct answer   2 skip   3 delete (exclude this question){accept}   q quit")


def read_answer(console: Console) -> str:
    console.print("  Type the correct answer; an empty line ends it.")
    lines: list[str] = []
    while True:
        line = input()
        if not line.strip():
            return "\n".join(lines).strip()
        lines.append(line)


def _save_with_conflict(console: Console, queue: ReviewQueue, item: ReviewItem, answer: str, reviewer: str) -> None:
    try:
        saved = queue.save_chosen(item.item_id, answer, reviewer, item.version)
        console.print(Text(f"  saved (item {saved.item_id}, by {reviewer})", style="green"))
    except Conflict as exc:
        current = exc.current
        console.print(
            Text(
                f"  Someone else changed this item meanwhile ({current.status.value}"
                f"{', by ' + current.reviewer if current.reviewer else ''}):",
                style="yellow",
            )
        )
        if current.chosen:
            console.print(Padding(Text(current.chosen, style="yellow"), (0, 0, 0, 4)))
        choice = input("  k keep theirs / o replace with yours > ").strip().lower()
        if choice == "o":
            queue.save_chosen(item.item_id, answer, reviewer, current.version)
            console.print(Text("  replaced with your answer", style="green"))
        else:
            console.print("  kept theirs; your answer was not saved")


def review_loop(queue: ReviewQueue, filters: Filters, reviewer: str, console: Console) -> int:
    items = queue.items(filters)
    if not items:
        console.print("Nothing to review with these filters.")
        return 0
    done = 0
    for position, listed in enumerate(items, start=1):
        item = queue.get(listed.item_id)  # fresh: someone may have reviewed it meanwhile
        show(console, item, position, len(items))
        choices = ("1", "2", "3", "4", "q") if item.suggestion and not item.chosen else ("1", "2", "3", "q")
        while True:
            choice = input("> ").strip().lower()
            if choice in choices:
                break
            console.print(f"  choose {', '.join(choices[:-1])} or q")
        if choice == "q":
            break
        try:
            if choice == "1":
                answer = read_answer(console)
                if not answer:
                    console.print("  empty answer: nothing saved")
                    continue
                _save_with_conflict(console, queue, item, answer, reviewer)
            elif choice == "4":
                _save_with_conflict(console, queue, item, item.suggestion or "", reviewer)
            elif choice == "2":
                queue.skip(item.item_id, item.version)
                console.print("  skipped")
            else:
                queue.delete(item.item_id, item.version)
                console.print("  deleted: this question will not be trained on")
        except Conflict as exc:
            console.print(Text(f"  not saved: {exc}", style="yellow"))
            continue
        done += 1
    console.print(f"Reviewed {done} of {len(items)} item(s) this session.")
    return 0


def main(args: list[str], settings: CollectorSettings) -> int:
    ns = _parser(settings).parse_args(args)
    if ns.web:
        from prefloop_collector.api import serve

        return serve(settings, ns.host, ns.port)
    reviewer = ns.reviewer or argtypes.default_reviewer()
    filters = Filters(game=ns.game, status=ReviewStatus(ns.status), min_score=ns.min_score, max_score=ns.max_score)
    try:
        return review_loop(ReviewQueue(settings.db_path), filters, reviewer, Console(highlight=False))
    except (EOFError, KeyboardInterrupt):
        print("\nstopped; every answer you finished is saved.")
        return 0
