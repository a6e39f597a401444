"""`prefloop-flows`: the flows' entry point."""

from __future__ import annotations

import argparse
import sys

from prefloop_core.servicecli import dispatch
from prefloop_core.settings import load_settings


def demo(args: list[str]) -> int:
    argparse.ArgumentParser(
        prog="prefloop demo",
        description="Run the loop on the embedded default (local bucket, SmolLM2-135M, CPU llama.cpp).",
    ).parse_args(args)
    from prefloop_flows.demo import run_demo

    return run_demo(load_settings())


def main() -> None:
    sys.exit(dispatch("prefloop-flows", {"demo": demo}))
