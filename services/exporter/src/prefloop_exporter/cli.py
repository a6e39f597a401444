"""`prefloop-exporter`: export a run into a release, list releases (also the exporter container's command)."""

from __future__ import annotations

import argparse
import sys

from prefloop_core.contracts import Quantization, Release
from prefloop_core.servicecli import dispatch
from prefloop_core.settings import load_settings
from prefloop_core.store import StoreError, open_store
from prefloop_core.toolchain import ToolchainError


def cmd_export(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop export",
        description="Merge a training run's LoRA adapter into its base (full precision), convert it with llama.cpp's "
        "convert_hf_to_gguf.py to f16 GGUF, quantize with llama-quantize, and publish a tagged release.",
    )
    parser.add_argument("run_id")
    parser.add_argument("--quant", action="append", choices=[q.value for q in Quantization if q is not Quantization.Q4_1],
                        help="quantization(s) to publish (repeatable; default Q4_K_M)")
    parser.add_argument("--mode", choices=["merged"], default="merged", help="merged (adapter mode: not built yet)")
    ns = parser.parse_args(args)
    from prefloop_exporter.export import export
    from prefloop_exporter.gguf_tools import ToolFailed

    settings = load_settings()
    try:
        release = export(ns.run_id, [Quantization(q) for q in ns.quant or ["Q4_K_M"]], settings, open_store(settings))
    except (StoreError, ToolchainError, ToolFailed) as exc:
        print(f"prefloop export: {exc}", file=sys.stderr)
        return 1
    print(release.tag)
    return 0


def cmd_releases(args: list[str]) -> int:
    argparse.ArgumentParser(prog="prefloop releases", description="Published releases, oldest first.").parse_args(args)
    settings = load_settings()
    store = open_store(settings)
    print("date       | tag | mode | quantizations | pairs | run")
    for tag in store.ids(Release):
        r = store.require(Release, tag)
        quants = ",".join(q.value for q in r.quantizations)
        print(f"{r.created_at:%Y-%m-%d} | {r.tag} | {r.mode.value} | {quants} | {r.pairs if r.pairs is not None else '-'} | {r.run_id or '-'}")
    return 0


HANDLERS = {"export": cmd_export, "releases": cmd_releases}


def main() -> None:
    sys.exit(dispatch("prefloop-exporter", HANDLERS))
