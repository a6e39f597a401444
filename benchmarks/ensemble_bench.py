"""An ensemble against its best member and the live model, side by side in one run: QA accuracy per game, and what an
answer costs (latency, delivered tokens/s).

    .venvs/flows/bin/python benchmarks/ensemble_bench.py --home DIR --live TAG --members A,B,C [--rule consensus]
        [--speed-prompts 12] [--out FILE]

DIR is a PREFLOOP_HOME whose bucket holds the releases: the live (base) release and adapter releases over it, e.g. the
`home` of a `benchmarks/effectiveness.py` work folder, whose trials are adapters trained on the same pairs with
different seeds. The ensemble is made with `prefloop ensemble` (the exporter's command). A real `prefloop serve` then
serves the live model, then each other variant in turn (deploy; promote, forced with this benchmark as the reason, so
the history says why), and
its own QA (`POST /admin/qa`, as the daily QA asks: one request at a time, greedy, 64 tokens, no prompt reuse) asks it
the QA set (`games-v2`: the demo's 72 questions and the second week's 24). Speed: the first `--speed-prompts`
questions through the router one at a time; an ensemble's answer costs every member's generation, and its delivered
tokens are the chosen answer's (the `ensemble` field). The baseline is the live model.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from report import emit, machine  # the script's folder is on sys.path

CORRECT_AT = 0.7


def speed(url: str, questions: list[str], template: Any) -> tuple[float, float]:
    """Mean seconds per answer and delivered tokens/s over `questions`, one request at a time through the router."""
    seconds, tokens = [], 0
    with httpx.Client(timeout=600) as client:
        for question in questions:
            body = {
                "messages": [m.model_dump() for m in template.render(question, None)],
                "max_tokens": 64,
                "temperature": 0,
                "cache_prompt": False,
            }
            started = time.perf_counter()
            answer = client.post(f"{url}/v1/chat/completions", json=body).raise_for_status().json()
            seconds.append(time.perf_counter() - started)
            ensemble = answer.get("ensemble")
            tokens += ensemble["answer_tokens"] if ensemble else answer["usage"]["completion_tokens"]
    return statistics.fmean(seconds), tokens / sum(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="PREFLOOP_HOME holding the releases")
    parser.add_argument("--live", required=True, help="the live model's release (the baseline)")
    parser.add_argument("--members", required=True, help="comma-separated adapter releases over --live's base")
    parser.add_argument("--rule", default="consensus", choices=["consensus", "judge"])
    parser.add_argument("--speed-prompts", type=int, default=12)
    parser.add_argument("--limit", type=int, help="ask only the first N questions (a quick look, not a result)")
    parser.add_argument("--out", type=Path, help="append the tables to this file")
    args = parser.parse_args()

    os.environ["PREFLOOP_HOME"] = str(args.home.resolve())
    from prefloop_core.clients import ServerAdminClient
    from prefloop_core.net import free_port
    from prefloop_core.prompts import load_template
    from prefloop_core.settings import load_settings
    from prefloop_flows.bundled import games_v2
    from prefloop_flows.demo import service

    settings = load_settings()
    venvs = settings.venvs_dir
    assert venvs is not None, "PREFLOOP_VENVS_DIR is not set: run `make setup` and source .venvs/env"
    members = args.members.split(",")
    made = subprocess.run(
        [str(venvs / "exporter/bin/prefloop-exporter"), "ensemble", *members, "--rule", args.rule],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode:
        raise SystemExit(made.stderr)
    ensemble = made.stdout.strip().splitlines()[-1]
    qa_set = games_v2()
    if args.limit:
        qa_set = qa_set.model_copy(update={"questions": qa_set.questions[: args.limit]})
    heldout = {q.id for q in qa_set.questions if q.split == "heldout"}
    games = sorted({q.game or "other" for q in qa_set.questions})
    template = load_template(settings.prompt_template)
    speed_questions = [q.question for q in qa_set.questions[: args.speed_prompts]]

    admin_token = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "PREFLOOP_SERVER_ADMIN_TOKEN": admin_token,
        "PREFLOOP_SERVER_QA_CONCURRENCY": "1",
        "PREFLOOP_SERVER_QA_MAX_TOKENS": "64",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rows = []
    log = args.home / "logs" / "ensemble-bench-server.log"
    command = [str(venvs / "server/bin/prefloop-server"), "serve", "--port", str(port), "--tag", args.live]
    with service("server", command, env, f"{url}/health", log):
        server = ServerAdminClient(url, admin_token, timeout=3600)
        for variant in [args.live, *members, ensemble]:
            if variant != args.live:
                server.deploy(variant, "ensemble_bench")
                server.promote(variant, "ensemble_bench", force_reason="ensemble_bench.py")
            report = server.qa(qa_set.model_dump(mode="json"))
            scores = {r.question_id: r.score for r in report.records}
            by_game = {g: statistics.fmean(r.score for r in report.records if (r.game or "other") == g) for g in games}
            seconds, tokens_s = speed(url, speed_questions, template)
            rows.append(
                {
                    "variant": variant,
                    "accuracy": report.summary.accuracy,
                    "correct": sum(s >= CORRECT_AT for s in scores.values()),
                    "games": by_game,
                    "heldout": statistics.fmean(scores[q] for q in heldout if q in scores),
                    "seconds": seconds,
                    "tokens_s": tokens_s,
                    "scores": scores,
                }
            )
            print(
                f"{variant}: accuracy {report.summary.accuracy:.1%}, {seconds:.2f} s per answer, {tokens_s:.1f} tokens/s",
                flush=True,
            )
    (args.home / "ensemble-bench.json").write_text(json.dumps(rows, indent=1))
    emit(table(rows, args, ensemble, games), args.out)


def table(rows: list[dict[str, Any]], args: argparse.Namespace, ensemble: str, games: list[str]) -> list[str]:
    live, *members, ens = rows
    best = max(members, key=lambda r: r["accuracy"])
    header = "| variant | accuracy | correct | " + " | ".join(games) + " | held out | s per answer | tokens/s | speed ratio |"
    lines = [
        f"## Ensemble of {len(members)} against its best member and the live model, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"machine: {machine()} · live `{args.live}` · ensemble `{ensemble}` ({args.rule}) of "
        + ", ".join(f"`{m['variant']}`" for m in members)
        + f" · QA set games-v2 ({len(live['scores'])} questions), key-fact recall, greedy, 64 tokens, one request at a "
        f"time · speed over {args.speed_prompts} questions through the router",
        "",
        header,
        "| --- | " + " | ".join(["---:"] * (len(games) + 6)) + " |",
    ]
    for row in rows:
        role = "live" if row is live else "ensemble" if row is ens else "best member" if row is best else "member"
        cells = [
            f"{row['accuracy']:.1%}",
            str(row["correct"]),
            *(f"{row['games'][g]:.1%}" for g in games),
            f"{row['heldout']:.1%}",
            f"{row['seconds']:.2f}",
            f"{row['tokens_s']:.1f}",
            f"{row['tokens_s'] / live['tokens_s']:.2f}",
        ]
        lines.append(f"| `{row['variant']}` ({role}) | " + " | ".join(cells) + " |")
    gained = sum(ens["scores"][q] >= CORRECT_AT > best["scores"][q] for q in ens["scores"])
    lost = sum(best["scores"][q] >= CORRECT_AT > ens["scores"][q] for q in ens["scores"])
    lines += [
        "",
        f"Against the best member: {ens['accuracy'] - best['accuracy']:+.1%} accuracy ({gained} questions right that it "
        f"got wrong, {lost} the other way); against the live model {ens['accuracy'] - live['accuracy']:+.1%}. An answer "
        f"took {ens['seconds'] / live['seconds']:.1f}x the live model's time.",
        "",
    ]
    return lines


if __name__ == "__main__":
    main()
