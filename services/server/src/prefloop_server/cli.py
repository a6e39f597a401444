"""`prefloop-server`: serve, deploy, promote, rollback, discard, slots, qa (also the container's command)."""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import sys
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from prefloop_core.clients import ServerAdminClient, ServiceError
from prefloop_core.contracts import GateMethod, QARecord, QASet
from prefloop_core.prompts import PromptTemplate, PromptTemplateError, load_template
from prefloop_core.qalog import CANDIDATES_SUFFIX, read_records
from prefloop_core.servicecli import dispatch
from prefloop_core.settings import load_settings
from prefloop_server.qa.candidates import generate
from prefloop_server.qa.gate import chart_png, compare, markdown
from prefloop_server.qa.qaset import QASetError, load_qa_set
from prefloop_server.qa.report import summary_lines, write_run
from prefloop_server.qa.runner import Decoding, Endpoint, EmbeddingScorer, JudgeScorer, KeyFactScorer, Scorer, run_qa
from prefloop_server.settings import ServerSettings


def _settings() -> ServerSettings:
    return load_settings(ServerSettings)


def _trigger() -> str:
    return f"cli:{getpass.getuser()}"


def _admin(settings: ServerSettings) -> ServerAdminClient:
    token = settings.server_admin_token.get_secret_value() if settings.server_admin_token else None
    return ServerAdminClient(settings.server_url, token)


def _admin_call(name: str, call: object) -> int:
    try:
        result = call()  # type: ignore[operator]
    except ServiceError as exc:
        print(f"prefloop {name}: {exc}", file=sys.stderr)
        if isinstance(exc.detail, dict) and exc.detail.get("log_tail"):
            print("llama-server log (last lines):\n" + exc.detail["log_tail"], file=sys.stderr)
        return 1
    print(json.dumps(to_jsonable_python(result), indent=2, ensure_ascii=False))
    return 0


def cmd_serve(args: list[str]) -> int:
    settings = _settings()
    parser = argparse.ArgumentParser(
        prog="prefloop serve",
        description="Run the router and the blue/green llama-server slots. "
        "At start it restores the release last in service (or --tag).",
    )
    parser.add_argument("--host", default=settings.server_host)
    parser.add_argument("--port", type=int, default=settings.server_port)
    parser.add_argument("--tag", help="release to serve at start (default: the last live one in the history)")
    ns = parser.parse_args(args)
    from prefloop_server.app import serve

    return serve(settings, ns.host, ns.port, ns.tag)


def cmd_deploy(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop deploy", description="Load a release into the idle slot (the live one keeps serving)."
    )
    parser.add_argument("tag")
    ns = parser.parse_args(args)
    return _admin_call("deploy", lambda: _admin(_settings()).deploy(ns.tag, _trigger()))


def cmd_promote(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop promote",
        description="Send new traffic to TAG, deployed in the idle slot. Over a live model it needs the QA gate's "
        "acceptance of TAG against that live model (`prefloop qa --gate` prints the report id; without --report the "
        "server's last gate of TAG counts); the release history records the report and its accuracy. --force "
        "promotes without it, as your decision: --reason is then required and goes into the history and changelog.",
        epilog="examples:\n  prefloop promote smollm2-135m-dpo-20261205-1 --report gate-20261205-101500-a1b2c3\n"
        "  prefloop promote smollm2-135m-dpo-20261205-1 --force --reason 'fixes the refund answers; QA set outdated'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("tag", help="the release in the idle slot (anything else there is refused)")
    parser.add_argument("--report", help="the QA gate report that accepted it (default: the server's last gate of TAG)")
    parser.add_argument("--force", action="store_true", help="promote although no gate accepted it (needs --reason)")
    parser.add_argument("--reason", help="why you force it (recorded with your user name)")
    ns = parser.parse_args(args)
    if ns.force and not (ns.reason or "").strip():
        parser.error("--force needs --reason TEXT: it is recorded in the release history and the changelog")
    if ns.reason and not ns.force:
        parser.error("--reason goes with --force")
    return _admin_call(
        "promote", lambda: _admin(_settings()).promote(ns.tag, _trigger(), ns.report, ns.reason if ns.force else None)
    )


def cmd_rollback(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop rollback",
        description="Put an earlier release back in service: "
        "instant if it is still loaded in the other slot, else it is deployed first.",
    )
    parser.add_argument("tag", nargs="?", help="release to put back (default: the one before the current)")
    ns = parser.parse_args(args)
    return _admin_call("rollback", lambda: _admin(_settings()).rollback(_trigger(), ns.tag))


def cmd_discard(args: list[str]) -> int:
    argparse.ArgumentParser(prog="prefloop discard", description="Unload the idle slot's candidate.").parse_args(args)
    return _admin_call("discard", lambda: _admin(_settings()).discard(_trigger()))


def cmd_slots(args: list[str]) -> int:
    argparse.ArgumentParser(prog="prefloop slots", description="Slots, the live one, and the release history.").parse_args(args)
    admin = _admin(_settings())
    return _admin_call("slots", lambda: {"status": admin.status(), "history": admin.history()[-10:]})


def _scorer(ns: argparse.Namespace) -> Scorer:
    if ns.scorer == "key_facts":
        return KeyFactScorer()
    if not ns.scorer_endpoint:
        raise SystemExit(f"prefloop qa: --scorer {ns.scorer} needs --scorer-endpoint URL")
    endpoint = Endpoint(ns.scorer_endpoint, ns.scorer_model)
    return EmbeddingScorer(endpoint) if ns.scorer == "embedding" else JudgeScorer(endpoint)


def cmd_qa(args: list[str]) -> int:
    settings = _settings()
    parser = argparse.ArgumentParser(
        prog="prefloop qa",
        description="Ask every question of a QA set and score the answers (key-fact recall by default). "
        "Writes QA records (the collector's input), today's markdown log and a summary. "
        "With --gate: compare the live model and the deployed candidate through the server.",
        epilog="examples:\n  prefloop qa --endpoint http://127.0.0.1:8090 --set infra/qa/bundled.json\n"
        "  PREFLOOP_QA_API_KEY=... prefloop qa --endpoint https://host/ --set my.json   # an endpoint that wants a key\n"
        "  prefloop qa --gate --set infra/qa/bundled.json --out qa-out/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--set", dest="qa_set", type=Path, required=True, help="QA set file (JSON)")
    parser.add_argument("--endpoint", help="OpenAI-compatible base URL (e.g. the router)")
    parser.add_argument(
        "--llama-server",
        action="store_true",
        help="the endpoint is llama-server or prefloop's router: ask it not to reuse cached prompts, so "
        "the same model gives the same greedy answers every run (reused prompts changed 37 of 72)",
    )
    parser.add_argument("--model", default=None, help="name recorded as the answering model (default: from /v1/models)")
    parser.add_argument("--gate", action="store_true", help="run the QA gate: live slot vs candidate slot")
    parser.add_argument(
        "--candidates",
        type=int,
        metavar="N",
        help="sample N answers per question (temperature > 0) and write the bad ones, with the best "
        "as a suggestion, to <out>/<set>-<model>.candidates.jsonl for `prefloop collect`",
    )
    parser.add_argument("--temperature", type=float, default=0.8, help="with --candidates (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("qa-out"), help="output folder (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=settings.server_qa_concurrency)
    parser.add_argument("--max-tokens", type=int, default=settings.server_qa_max_tokens)
    parser.add_argument("--scorer", choices=["key_facts", "embedding", "judge"], default="key_facts")
    parser.add_argument("--scorer-endpoint", help="OpenAI-compatible URL for the embedding or judge scorer")
    parser.add_argument("--scorer-model", default="default")
    ns = parser.parse_args(args)
    try:
        qa_set = load_qa_set(ns.qa_set)
        template = load_template(settings.prompt_template)
    except (QASetError, PromptTemplateError) as exc:
        print(f"prefloop qa: {exc}", file=sys.stderr)
        return 2
    if ns.gate:
        return _gate(settings, qa_set.model_dump(mode="json"), ns.out)
    if not ns.endpoint:
        parser.error("--endpoint is required (or --gate)")
    key = settings.qa_api_key.get_secret_value() if settings.qa_api_key else None
    model = ns.model or _served_model(ns.endpoint, key)
    if ns.candidates:
        return _candidates(ns, qa_set, template, Endpoint(ns.endpoint, model, api_key=key), settings)
    run = run_qa(
        qa_set,
        Endpoint(ns.endpoint, model, api_key=key, llama_server=ns.llama_server),
        template,
        model=model,
        scorer=_scorer(ns),
        concurrency=ns.concurrency,
        decoding=Decoding(max_tokens=ns.max_tokens),
        correct_at=settings.server_correct_at,
        on_answer=lambda done, total: print(f"\r  answered {done}/{total}", end="", file=sys.stderr, flush=True),
    )
    print(file=sys.stderr)
    paths = write_run(run, ns.out, f"{qa_set.name}-{model}")
    print("\n".join(summary_lines(run)))
    print(f"records: {paths['records']}\nlog:     {paths['log']}\nsummary: {paths['summary']}")
    return 0 if not run.failures else 1


def _candidates(
    ns: argparse.Namespace, qa_set: QASet, template: PromptTemplate, endpoint: Endpoint, settings: ServerSettings
) -> int:
    if ns.candidates < 2 or ns.temperature <= 0:
        print("prefloop qa --candidates: sample at least 2 answers with --temperature above 0", file=sys.stderr)
        return 2
    model = endpoint.model
    found = generate(
        qa_set,
        endpoint,
        template,
        model=model,
        samples=ns.candidates,
        temperature=ns.temperature,
        max_tokens=ns.max_tokens,
        correct_at=settings.server_correct_at,
        concurrency=ns.concurrency,
        scorer=_scorer(ns),
    )
    ns.out.mkdir(parents=True, exist_ok=True)
    path = ns.out / f"{qa_set.name}-{model}{CANDIDATES_SUFFIX}"
    path.write_text("".join(c.model_dump_json() + "\n" for c in found), encoding="utf-8")
    suggested = sum(1 for c in found if c.suggestion)
    print(f"{len(found)} bad sampled answer(s) from {len(qa_set.questions)} question(s), {suggested} with a suggested answer")
    print(f"written: {path} (queue them with `prefloop collect {path}`)")
    return 0


def _served_model(endpoint: str, key: str | None) -> str:
    import httpx

    try:
        data = httpx.get(
            f"{endpoint.rstrip('/')}/v1/models", timeout=10, headers=Endpoint(endpoint, api_key=key).headers()
        ).json()["data"]
        return str(data[0]["id"])
    except (httpx.HTTPError, KeyError, IndexError, ValueError):
        return "unknown"


def _read_run(path: Path, side: str) -> list[QARecord]:
    """One run's QA records; a file that is not one run of one model, with each question once, is bad input."""
    records, problems = read_records(path)
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise GateInputError(
            f"--{side} {path}: {len(problems)} bad line(s); fix them (or write the file again with `prefloop qa`):\n{shown}{more}"
        )
    models = sorted({r.model for r in records})
    if len(models) > 1:
        raise GateInputError(
            f"--{side} {path}: answers of {len(models)} models ({', '.join(models[:5])}); give one run of one model per file"
        )
    seen: dict[str, int] = {}
    for number, record in enumerate(records, start=1):
        if record.question_id in seen:
            raise GateInputError(
                f"--{side} {path}: question {record.question_id} is answered twice (records "
                f"{seen[record.question_id]} and {number}); give one run per file"
            )
        seen[record.question_id] = number
    return records


class GateInputError(ValueError):
    """The offline gate's input is not two comparable runs; the message names the file and what to do."""


def cmd_gate(args: list[str]) -> int:
    settings = _settings()
    rule = settings.gate_rule()
    parser = argparse.ArgumentParser(
        prog="prefloop gate",
        description="Decide offline, as the QA gate does before a promotion: the live model's QA records against a "
        "candidate's, question by question (two .jsonl files as `prefloop qa` writes them, the same questions in "
        "both). Prints the table and the reasons; exits 0 when the candidate is accepted, 1 when refused, 2 on bad "
        "input. The default rule accepts a candidate that is better beyond chance (an exact test on the questions "
        "that went from wrong to right and back), not worse beyond chance on the held-out questions, and regresses "
        "no protected question.",
        epilog="examples:\n"
        "  prefloop gate --live qa-out/games-v1-live.records.jsonl --candidate qa-out/games-v1-cand.records.jsonl\n"
        "  prefloop gate --live L.jsonl --candidate C.jsonl --json > verdict.json\n"
        "  prefloop gate --live L.jsonl --candidate C.jsonl --rule count   # the first rule: a margin, at most N "
        "regressions",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--live", type=Path, required=True, help="QA records of the model in service (.jsonl)")
    parser.add_argument("--candidate", type=Path, required=True, help="QA records of the candidate (.jsonl)")
    parser.add_argument(
        "--rule",
        choices=[m.value for m in GateMethod],
        default=rule.method.value,
        help="mcnemar (default) or count (default here: %(default)s, PREFLOOP_SERVER_GATE_METHOD)",
    )
    parser.add_argument("--alpha", type=float, help=f"mcnemar: significance of 'better' (default {rule.alpha:g})")
    parser.add_argument(
        "--heldout-alpha", type=float, help=f"mcnemar: significance of 'held out worse' (default {rule.heldout_alpha:g})"
    )
    parser.add_argument(
        "--max-heldout-drop", type=float, help=f"mcnemar: largest held-out accuracy drop, 0-1 (default {rule.max_heldout_drop:g})"
    )
    parser.add_argument("--correct-at", type=float, help=f"a score at or above this is correct (default {rule.correct_at:g})")
    parser.add_argument("--min-delta", type=float, help=f"count: the margin (default {rule.min_delta:g})")
    parser.add_argument("--max-regressions", type=int, help=f"count: most regressions (default {rule.max_regressions})")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON instead of the table")
    parser.add_argument("--out", type=Path, help="also write comparison.md, comparison.png and verdict.json here")
    ns = parser.parse_args(args)
    try:
        chosen = settings.gate_rule(
            method=ns.rule,
            alpha=ns.alpha,
            heldout_alpha=ns.heldout_alpha,
            max_heldout_drop=ns.max_heldout_drop,
            correct_at=ns.correct_at,
            min_delta=ns.min_delta,
            max_regressions=ns.max_regressions,
        )
    except ValidationError as exc:
        print(
            "prefloop gate: "
            + "; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors()),
            file=sys.stderr,
        )
        return 2
    try:
        live, candidate = _read_run(ns.live, "live"), _read_run(ns.candidate, "candidate")
        only = sorted({r.question_id for r in live} ^ {r.question_id for r in candidate})
        if only:
            raise GateInputError(
                f"the two runs asked different questions ({len(only)} in one file only: "
                f"{', '.join(only[:8])}{' ...' if len(only) > 8 else ''}); compare runs of the same QA set"
            )
    except GateInputError as exc:
        print(f"prefloop gate: {exc}", file=sys.stderr)
        return 2
    verdict = compare(live, candidate, chosen)
    if ns.out:
        ns.out.mkdir(parents=True, exist_ok=True)
        (ns.out / "verdict.json").write_text(verdict.model_dump_json(indent=2), encoding="utf-8")
        (ns.out / "comparison.md").write_text(markdown(verdict), encoding="utf-8")
        (ns.out / "comparison.png").write_bytes(chart_png(verdict))
    print(verdict.model_dump_json(indent=2) if ns.json else markdown(verdict))
    return 0 if verdict.accepted else 1


def _gate(settings: ServerSettings, qa_set: dict[str, object], out: Path) -> int:
    try:
        result = _admin(settings).gate(qa_set)
    except ServiceError as exc:
        print(f"prefloop qa --gate: {exc}", file=sys.stderr)
        if isinstance(exc.detail, dict) and exc.detail.get("log_tail"):
            print("llama-server log (last lines):\n" + exc.detail["log_tail"], file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    report = result.report
    (out / "gate.json").write_text(result.model_dump_json(indent=2), encoding="utf-8")
    (out / "comparison.md").write_text(result.markdown, encoding="utf-8")
    (out / "comparison.png").write_bytes(base64.b64decode(result.chart_png))
    print(result.markdown)
    print(f"report {report.report_id} (in the bucket: qa/{report.report_id}/)")
    print(f"written: {out / 'gate.json'}, {out / 'comparison.md'}, {out / 'comparison.png'}")
    if report.verdict.accepted:
        print(f"promote it with: prefloop promote {report.candidate_tag} --report {report.report_id}")
    return 0 if report.verdict.accepted else 1


HANDLERS = {
    "serve": cmd_serve,
    "deploy": cmd_deploy,
    "promote": cmd_promote,
    "rollback": cmd_rollback,
    "discard": cmd_discard,
    "slots": cmd_slots,
    "qa": cmd_qa,
    "gate": cmd_gate,
}


def main() -> None:
    sys.exit(dispatch("prefloop-server", HANDLERS))
