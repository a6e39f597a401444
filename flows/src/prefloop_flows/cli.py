"""`prefloop-flows`: the demo, the flows run once from a terminal, and the long-running deployments."""

from __future__ import annotations

import argparse
import sys

from prefloop_core.clients import ServiceError
from prefloop_core.servicecli import dispatch
from prefloop_core.settings import load_settings


def demo(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop demo",
        description="The whole loop on the embedded default (local bucket, SmolLM2-135M, CPU llama.cpp, no Docker): "
        "baseline QA on the bundled QA set, bad answers queued, the bundled reviewer answers as the human step, "
        "DPO + LoRA training, export, deploy to the idle slot, QA gate, promote if it won.",
    )
    parser.add_argument(
        "--interactive", action="store_true", help="do the human step yourself in the review UI instead of the bundled answers"
    )
    parser.add_argument("--keep-running", action="store_true", help="leave the collector and the server running afterwards")
    parser.add_argument(
        "--rounds",
        type=int,
        choices=(1, 2),
        default=1,
        help="2: a second week: 24 new train questions join the QA set (games-v2), the second bundled "
        "batch answers them, and the new adapter continues the promoted one (about an hour on 2 cores: round 1 "
        "takes 20 min, round 2 38)",
    )
    ns = parser.parse_args(args)
    from prefloop_flows.demo import run_demo
    from prefloop_flows.jobs import JobFailed

    try:
        return run_demo(interactive=ns.interactive, keep_running=ns.keep_running, rounds=ns.rounds)
    except (ServiceError, JobFailed) as exc:
        print(f"prefloop demo: {exc}", file=sys.stderr)
        return 1


def serve(args: list[str]) -> int:
    argparse.ArgumentParser(
        prog="prefloop deployments",
        description="Serve the flows as Prefect deployments until stopped: `collect/daily` on PREFLOOP_FLOWS_COLLECT_CRON, "
        "and improve, train, export, evaluate-and-deploy and rollback `/on-demand` (run them from the dashboard, "
        "the Prefect client or its HTTP API). Needs PREFECT_API_URL pointing at a Prefect server.",
    ).parse_args(args)
    from prefloop_flows.deployments import serve_deployments
    from prefloop_flows.settings import FlowsSettings

    serve_deployments(load_settings(FlowsSettings))
    return 0


def improve(args: list[str]) -> int:
    argparse.ArgumentParser(
        prog="prefloop improve",
        description="Run the `improve` flow once from this terminal: snapshot -> train -> export -> QA gate -> promote "
        "or keep the live model. Needs the collector and the server running (PREFLOOP_FLOWS_* settings).",
    ).parse_args(args)
    from prefloop_flows.flows import improve_flow, outcome_of

    state = improve_flow(return_state=True)
    if state.is_failed() or state.is_crashed():
        print(f"prefloop improve: {state.message}", file=sys.stderr)
        return 1
    outcome = outcome_of(state)
    print(outcome.comparison or "")
    print(f"{state.name}: {outcome.reason}")
    return 0 if outcome.accepted else 3


def main() -> None:
    sys.exit(dispatch("prefloop-flows", {"demo": demo, "deployments": serve, "improve": improve}))
