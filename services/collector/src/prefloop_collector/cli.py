"""`prefloop-collector`: collect, status, review, import, template, snapshot (also the container's command)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prefloop_core.contracts import ImportFormat, PairSplit
from prefloop_core.prompts import PromptTemplateError, load_template
from prefloop_core.servicecli import dispatch
from prefloop_core.settings import load_settings
from prefloop_core.store import StoreError, open_store
from prefloop_collector import args as argtypes
from prefloop_collector.contributors import ContributorError, Contributors
from prefloop_collector.importer import parse_import, template_entries
from prefloop_collector.ingest import collect
from prefloop_collector.queue import Filters, ReviewQueue
from prefloop_collector.settings import CollectorSettings
from prefloop_collector.snapshot import snapshot
from prefloop_collector.status import contributor_lines, dataset_status, render_status


def _settings() -> CollectorSettings:
    return load_settings(CollectorSettings)


def cmd_collect(args: list[str]) -> int:
    settings = _settings()
    parser = argparse.ArgumentParser(
        prog="prefloop collect",
        description="Queue every answer at or under the threshold from the last days' QA logs for review. "
        "Re-running adds only what is new. Held-out questions (split: heldout) are only measured, never queued.",
        epilog="example: prefloop collect qa-logs/ --threshold 70%% --days 7",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="QA log files (.jsonl, daily .md) or folders of them")
    parser.add_argument(
        "--threshold",
        type=argtypes.threshold,
        default=settings.collector_threshold,
        help="accuracy at or under which an answer is bad: 70%%, 0.7 or 70 (default %(default).2f)",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=settings.collector_window_days,
        help="window: answers from the last N days (default %(default)s)",
    )
    ns = parser.parse_args(args)
    queue = ReviewQueue(settings.db_path)
    report = collect(queue, ns.paths, ns.threshold, ns.days, settings.collector_max_text_chars)
    status = dataset_status(queue, settings)
    print(
        f"read {report.records} QA records from {report.files} file(s); {report.in_window} in the last {ns.days} days, "
        f"{report.bad_answers} at or under {ns.threshold:.0%}"
    )
    print(
        f"{report.counts.new_rejected} new rejected answers ({status.rejected} total), "
        f"{report.counts.new_items} new questions; {status.pending} pending review"
    )
    print(render_status(status))
    if report.problems:
        print(f"\n{len(report.problems)} problem(s); every valid record was queued:", file=sys.stderr)
        for problem in report.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


def cmd_status(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="prefloop status", description="Where the dataset stands.")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    ns = parser.parse_args(args)
    settings = _settings()
    status = dataset_status(ReviewQueue(settings.db_path), settings)
    print(status.model_dump_json(indent=2) if ns.json else render_status(status))
    return 0


IMPORT_FORMATS = """formats (told apart by their fields; --format forces one):
  prefloop        {"question": "...", "rejected": "...", "chosen": "..."}  (+ "game", "context", "prompt")
                  what `prefloop template` hands out; the prompt is built from the RAG template
  standard        {"prompt": "...", "chosen": "...", "rejected": "..."}
                  TRL's standard format and the DPO guide's; the prompt may be
                  {"instruction": "...", "input": "..."}; it is the user's message as given
  conversational  {"prompt": [{"role": "user", "content": "..."}],
                   "chosen": [{"role": "assistant", "content": "..."}], "rejected": [...]}
                  TRL's conversational format; without "prompt", the messages chosen and rejected share

A file is a JSON list or JSON Lines (one entry per line) of one format. Fields a format does not
read (ids, scores) are ignored and named. The file is imported whole or not at all.

examples:
  prefloop import answers.json                  the template, filled in
  prefloop import prefs.jsonl --reviewer minji  TRL-style pairs, signed as minji
  prefloop import held-out.json --split eval    pairs the trainer evaluates on instead of training
"""


def cmd_import(args: list[str]) -> int:
    settings = _settings()
    parser = argparse.ArgumentParser(
        prog="prefloop import",
        description="Import reviewed preference pairs: they become trainable pairs like the ones written in "
        "`prefloop review`, pass the same checks and go into the next snapshot.",
        epilog=IMPORT_FORMATS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, help="a JSON list or JSON Lines file of pairs")
    parser.add_argument(
        "--format",
        choices=[f.value for f in ImportFormat],
        help="read every entry as this format (default: told by the entries' fields)",
    )
    parser.add_argument(
        "--split",
        choices=[s.value for s in PairSplit],
        default=PairSplit.TRAIN.value,
        help="train (default) or eval: the trainer evaluates on eval pairs instead of holding out some of the others",
    )
    parser.add_argument(
        "--reviewer",
        type=argtypes.name,
        default=argtypes.default_reviewer(),
        help="name stored on the imported pairs (default: your user name)",
    )
    ns = parser.parse_args(args)
    try:
        data = ns.file.read_bytes()
    except OSError as exc:
        print(f"prefloop import: {ns.file}: {exc.strerror}", file=sys.stderr)
        return 2
    parsed = parse_import(data, str(ns.file), settings.collector_max_text_chars, ns.format and ImportFormat(ns.format))
    if parsed.problems:
        print("\n".join(parsed.problem_lines()), file=sys.stderr)
        return 1
    if parsed.format is not None:
        ignored = f"; ignored field(s): {', '.join(parsed.ignored)}" if parsed.ignored else ""
        print(f"{ns.file}: {len(parsed.entries)} {parsed.format.value} entries{ignored}")
    queue = ReviewQueue(settings.db_path)
    report = queue.import_entries(
        parsed.entries, ns.reviewer, parsed.format or ImportFormat.PREFLOOP, ns.file.name, PairSplit(ns.split)
    )
    print("\n".join(report.lines()))
    print(render_status(dataset_status(queue, settings)))
    return 0


def cmd_template(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop template",
        description="Write the pending items as a JSON template: hand it out, let people fill in "
        '"chosen", then `prefloop import` it back.',
    )
    parser.add_argument("out", type=Path, help="file to write (- for standard output)")
    parser.add_argument("--game", type=argtypes.name, help="only this game")
    ns = parser.parse_args(args)
    settings = _settings()
    entries = template_entries(ReviewQueue(settings.db_path).items(Filters(game=ns.game)))
    text = json.dumps(entries, ensure_ascii=False, indent=2) + "\n"
    if str(ns.out) == "-":
        sys.stdout.write(text)
    else:
        ns.out.write_text(text, encoding="utf-8")
        print(f"wrote {len(entries)} pending item(s) to {ns.out}")
    return 0


def cmd_snapshot(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop snapshot",
        description="Run the pre-training checks and publish the reviewed pairs as an immutable dataset.",
    )
    parser.add_argument(
        "--allow-failed-checks", action="store_true", help="publish even if a hard check fails (the verdicts are recorded)"
    )
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    ns = parser.parse_args(args)
    settings = _settings()
    try:
        template = load_template(settings.prompt_template)
        result = snapshot(ReviewQueue(settings.db_path), open_store(settings), settings, template, ns.allow_failed_checks)
    except (PromptTemplateError, StoreError) as exc:
        print(f"prefloop snapshot: {exc}", file=sys.stderr)
        return 1
    if not ns.json:
        for check in result.checks:
            print(f"  {check.verdict.value.upper():<4} {check.name:<20} {'(hard) ' if check.hard else ''}{check.detail}")
    if result.manifest is None:
        print("snapshot refused: a hard check failed (see above); fix the data, or --allow-failed-checks", file=sys.stderr)
        return 1
    if ns.json:
        print(result.manifest.model_dump_json(indent=2))
    else:
        state = "published" if result.new else "already published (same content)"
        print(f"dataset {result.manifest.dataset_id}: {result.manifest.pair_count} pairs, {state}")
    return 0


def cmd_offer(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop offer",
        description="Offer pending questions to contributors: they see them in the review UI (or as JSON from "
        "/api/contribute/items) and answer; an answer becomes a pair when enough of them agree "
        "(PREFLOOP_COLLECTOR_CONTRIBUTORS_AGREE) or a reviewer approves it.",
        epilog="examples: prefloop offer --game palworld · prefloop offer --item 12 --item 15 · prefloop offer --withdraw",
    )
    parser.add_argument(
        "--item", type=argtypes.item_id, action="append", dest="items", metavar="ID", help="this item (repeatable)"
    )
    parser.add_argument("--game", type=argtypes.name, help="the pending items of this game (default: every pending item)")
    parser.add_argument("--withdraw", action="store_true", help="stop offering them (answers already given are kept)")
    ns = parser.parse_args(args)
    queue = ReviewQueue(_settings().db_path)
    changed = queue.offer(ns.items, ns.game, offered=not ns.withdraw)
    print(f"{'withdrew' if ns.withdraw else 'offered'} {changed} item(s)" + ("" if ns.withdraw else " to contributors"))
    return 0


def cmd_contributors(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop contributors",
        description="Contributors answer the questions offered to them (`prefloop offer`) and nothing else. Run on the "
        "collector's machine; remotely, the same calls are under /api/admin with PREFLOOP_COLLECTOR_ADMIN_TOKEN.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{invite,list,revoke}")
    commands.add_parser("invite", help="make a contributor and print their token (shown once)").add_argument(
        "name", type=argtypes.name
    )
    commands.add_parser("list", help="each contributor's answers and agreement rate")
    commands.add_parser("revoke", help="the token stops working; their pending answers are set aside").add_argument("name")
    ns = parser.parse_args(args)
    settings = _settings()
    people = Contributors(ReviewQueue(settings.db_path), settings)
    try:
        if ns.command == "invite":
            invite = people.invite(ns.name)
            print(f"invited {invite.name}; their token (shown once, hand it over privately):\n{invite.token}")
        elif ns.command == "revoke":
            result = people.revoke(ns.name)
            print(f"revoked {result.name}; {result.set_aside} pending answer(s) set aside, everything else kept")
        else:
            lines = contributor_lines(dataset_status(people.queue, settings))
            print("\n".join(lines) if lines else "no contributors yet: `prefloop contributors invite NAME` makes one")
    except ContributorError as exc:
        print(f"prefloop contributors: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_review(args: list[str]) -> int:
    from prefloop_collector.review_cli import main as review_main

    return review_main(args, _settings())


HANDLERS = {
    "collect": cmd_collect,
    "status": cmd_status,
    "review": cmd_review,
    "import": cmd_import,
    "template": cmd_template,
    "snapshot": cmd_snapshot,
    "offer": cmd_offer,
    "contributors": cmd_contributors,
}


def main() -> None:
    sys.exit(dispatch("prefloop-collector", HANDLERS))
