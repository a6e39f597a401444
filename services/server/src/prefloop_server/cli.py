"""`prefloop-server`: serve, deploy, promote, rollback, discard, slots, qa (also the container's command)."""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import sys
from pathlib import Path

from prefloop_core.clients import ServerAdminClient, ServiceError
from prefloop_core.contracts import QASet
from prefloop_core.prompts import PromptTemplate, PromptTemplateError, load_template
from prefloop_core.qalog import CANDIDATES_SUFFIX
from prefloop_core.servicecli import dispatch
from prefloop_core.settings import load_settings
from prefloop_server.qa.candidates import generate
from prefloop_server.qa.gate import GateVerdict
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
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def cmd_serve(args: list[str]) -> int:
    settings = _settings()
    parser = argparse.ArgumentParser(prog="prefloop serve", description="Run the router and the blue/green llama-server slots. "
                                     "At start it restores the release last in service (or --tag).")
    parser.add_argument("--host", default=settings.server_host)
    parser.add_argument("--port", type=int, default=settings.server_port)
    parser.add_argument("--tag", help="release to serve at start (default: the last live one in the history)")
    ns = parser.parse_args(args)
    from prefloop_server.app import serve

    return serve(settings, ns.host, ns.port, ns.tag)


def cmd_deploy(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="prefloop deploy", description="Load a release into the idle slot (the live one keeps serving).")
    parser.add_argument("tag")
    ns = parser.parse_args(args)
    return _admin_call("deploy", lambda: _admin(_settings()).deploy(ns.tag, _trigger()))


def cmd_promote(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="prefloop promote", description="Send new traffic to the slot just deployed.")
    parser.add_argument("--accuracy", type=float, help="QA accuracy to record in the release history")
    ns = parser.parse_args(args)
    return _admin_call("promote", lambda: _admin(_settings()).promote(_trigger(), ns.accuracy))


def cmd_rollback(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="prefloop rollback", description="Put an earlier release back in service: "
                                     "instant if it is still loaded in the other slot, else it is deployed first.")
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
        "  prefloop qa --gate --set infra/qa/bundled.json --out qa-out/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--set", dest="qa_set", type=Path, required=True, help="QA set file (JSON)")
    parser.add_argument("--endpoint", help="OpenAI-compatible base URL (e.g. the router)")
    parser.add_argument("--llama-server", action="store_true",
                        help="the endpoint is llama-server or prefloop's router: ask it not to reuse cached prompts, so "
                        "the same model gives the same greedy answers every run (reused prompts changed 37 of 72)")
    parser.add_argument("--model", default=None, help="name recorded as the answering model (default: from /v1/models)")
    parser.add_argument("--gate", action="store_true", help="run the QA gate: live slot vs candidate slot")
    parser.add_argument("--candidates", type=int, metavar="N",
                        help="sample N answers per question (temperature > 0) and write the bad ones, with the best "
                        "as a suggestion, to <out>/<set>-<model>.candidates.jsonl for `prefloop collect`")
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
    model = ns.model or _served_model(ns.endpoint)
    if ns.candidates:
        return _candidates(ns, qa_set, template, model, settings)
    run = run_qa(qa_set, Endpoint(ns.endpoint, model, llama_server=ns.llama_server), template, model=model,
                 scorer=_scorer(ns), concurrency=ns.concurrency, decoding=Decoding(max_tokens=ns.max_tokens), correct_at=settings.server_correct_at,
                 on_answer=lambda done, total: print(f"\r  answered {done}/{total}", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    paths = write_run(run, ns.out, f"{qa_set.name}-{model}")
    print("\n".join(summary_lines(run)))
    print(f"records: {paths['records']}\nlog:     {paths['log']}\nsummary: {paths['summary']}")
    return 0 if not run.failures else 1


def _candidates(ns: argparse.Namespace, qa_set: QASet, template: PromptTemplate, model: str, settings: ServerSettings) -> int:
    if ns.candidates < 2 or ns.temperature <= 0:
        print("prefloop qa --candidates: sample at least 2 answers with --temperature above 0", file=sys.stderr)
        return 2
    found = generate(qa_set, Endpoint(ns.endpoint, model), template, model=model, samples=ns.candidates,
                     temperature=ns.temperature, max_tokens=ns.max_tokens, correct_at=settings.server_correct_at,
                     concurrency=ns.concurrency, scorer=_scorer(ns))
    ns.out.mkdir(parents=True, exist_ok=True)
    path = ns.out / f"{qa_set.name}-{model}{CANDIDATES_SUFFIX}"
    path.write_text("".join(c.model_dump_json() + "\n" for c in found), encoding="utf-8")
    suggested = sum(1 for c in found if c.suggestion)
    print(f"{len(found)} bad sampled answer(s) from {len(qa_set.questions)} question(s), {suggested} with a suggested answer")
    print(f"written: {path} (queue them with `prefloop collect {path}`)")
    return 0


def _served_model(endpoint: str) -> str:
    import httpx

    try:
        data = httpx.get(f"{endpoint.rstrip('/')}/v1/models", timeout=10).json()["data"]
        return str(data[0]["id"])
    except (httpx.HTTPError, KeyError, IndexError, ValueError):
        return "unknown"


def _gate(settings: ServerSettings, qa_set: dict[str, object], out: Path) -> int:
    try:
        report = _admin(settings).gate(qa_set)
    except ServiceError as exc:
        print(f"prefloop qa --gate: {exc}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    verdict = GateVerdict.model_validate(report["verdict"])
    (out / "gate.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "comparison.md").write_text(report["markdown"], encoding="utf-8")
    (out / "comparison.png").write_bytes(base64.b64decode(report["chart_png"]))
    print(report["markdown"])
    print(f"written: {out / 'gate.json'}, {out / 'comparison.md'}, {out / 'comparison.png'}")
    return 0 if verdict.accepted else 1


HANDLERS = {
    "serve": cmd_serve,
    "deploy": cmd_deploy,
    "promote": cmd_promote,
    "rollback": cmd_rollback,
    "discard": cmd_discard,
    "slots": cmd_slots,
    "qa": cmd_qa,
}


def main() -> None:
    sys.exit(dispatch("prefloop-server", HANDLERS))
