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
    parser.add_argument("--interactive", action="store_true",
                        help="do the human step yourself in the review UI instead of the bundled answers")
    parser.add_argument("--keep-running", action="store_true", help="leave the collector and the server running afterwards")
    ns = parser.parse_args(args)
    from prefloop_flows.demo import run_demo
    from prefloop_flows.settings import FlowsSettings

    try:
        return run_demo(load_settings(FlowsSettings), interactive=ns.interactive, keep_running=ns.keep_running)
    except ServiceError as exc:
        print(f"prefloop demo: {exc}", file=sys.stderr)
        return 1


def main() -> None:
    sys.exit(dispatch("prefloop-flows", {"demo": demo}))
