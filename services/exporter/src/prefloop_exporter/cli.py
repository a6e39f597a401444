"""`prefloop-exporter`: export a run into a release, make an ensemble of releases, list releases (also the exporter
container's command)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from prefloop_core.changelog import HEADER, changelog
from prefloop_core.chat_templates import ChatTemplateError, bundled_names, configured_chat_template
from prefloop_core.contracts import EnsembleRule, ExportMode, Quantization, Release
from prefloop_core.openmp import use_wait_policy
from prefloop_core.servicecli import dispatch
from prefloop_core.settings import load_settings
from prefloop_core.store import StoreError, open_store
from prefloop_core.toolchain import ToolchainError


def cmd_export(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop export",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Turn a training run into a verified, tagged GGUF release llama-server can load.",
        epilog="""modes:
  merged   merge the LoRA into the base in full precision, convert with llama.cpp's convert_hf_to_gguf.py
           to f16, quantize with llama-quantize (minutes; one self-contained model file)
  adapter  convert only the LoRA with convert_lora_to_gguf.py (a few MB, seconds); llama-server applies it
           over the base GGUF, exported once per base as release <base>-base-<quant> and reused

before publishing, four checks run (a failure publishes nothing and says why): llama-server loads the GGUF
and answers; the chat template and special tokens survive (HF ids == llama-server /tokenize ids); greedy
answers of the f16 GGUF agree with the merged HF model; the quantized model's log-likelihood on a fixed
text stays within a bound of f16's, anchored on llama.cpp's published loss for that quantization.

examples:
  prefloop export run-0123456789abcdef-3f2a9c1e
  prefloop export run-0123456789abcdef-3f2a9c1e --quant Q4_K_M --quant Q8_0
  prefloop export run-0123456789abcdef-3f2a9c1e --mode adapter

A run already exported in that mode and quantization is not exported twice: its release is printed.
The output's last two lines are `PREFLOOP_RESULT {"tag": ..., "run_id": ..., "reused": ...}` and the tag.""",
    )
    parser.add_argument("run_id", help="a published training run (see the trainer's output or the bucket's runs/)")
    parser.add_argument(
        "--quant",
        action="append",
        choices=[q.value for q in Quantization if q is not Quantization.Q4_1],
        help="quantization(s) to publish (repeatable; default Q4_K_M; adapter mode takes one)",
    )
    parser.add_argument(
        "--mode",
        choices=[ExportMode.MERGED.value, ExportMode.ADAPTER.value],
        default="merged",
        help="merged (default) or adapter",
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="export anew even if a release already holds this run in this mode and quantization "
        "(by default that release is printed and nothing is made)",
    )
    ns = parser.parse_args(args)
    from prefloop_exporter.export import export

    settings = load_settings()
    use_wait_policy(settings.omp_wait_policy)  # before torch and the llama.cpp tools start
    quants = [Quantization(q) for q in ns.quant or ["Q4_K_M"]]
    return _publish(
        "prefloop export",
        lambda: export(ns.run_id, quants, settings, open_store(settings), mode=ExportMode(ns.mode), again=ns.again),
    )


def _publish(prog: str, make: Callable[[], Release]) -> int:
    """Make a release and print its tag last (after its `PREFLOOP_RESULT` line, for a shell's `| tail -n 1`); a
    user-facing failure is one message, exit 1."""
    from prefloop_exporter.disk import NotEnoughDisk
    from prefloop_exporter.export import ExportError
    from prefloop_exporter.gguf_tools import ToolFailed
    from prefloop_exporter.verify import VerificationFailed

    try:
        release = make()
    except VerificationFailed as exc:
        print(f"{prog}: {exc}\nnothing was published.", file=sys.stderr)
        return 1
    except (StoreError, ToolchainError, ToolFailed, ExportError, NotEnoughDisk, FileNotFoundError, ChatTemplateError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    print(release.tag)
    return 0


def cmd_base_release(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop base-release",
        description="Export a base model alone as release <base-short>-base-<quant> (f16 + the quantization, verified), "
        "the release adapter exports are served over. Serve it as the live model before the first round, and the QA "
        "gate compares like with like: the candidate differs from it by the LoRA only, not by a different quantization. "
        "An existing base release is reused. Prints the tag.",
    )
    parser.add_argument("--base", default="smollm2", help="an HF folder or hub id, a GGUF file, or smollm2 (default)")
    parser.add_argument(
        "--quant",
        default="Q4_K_M",
        choices=[q.value for q in Quantization if q is not Quantization.Q4_1],
        help="quantization (default %(default)s)",
    )
    parser.add_argument(
        "--chat-template",
        metavar="NAME|FILE",
        help=f"a chat template for a base model that has none (or to replace its own): "
        f"{', '.join(bundled_names())}, or a Jinja file; train with the same one "
        "(default: $PREFLOOP_BASE_CHAT_TEMPLATE, else the model's own)",
    )
    ns = parser.parse_args(args)
    from prefloop_exporter.export import export_base

    settings = load_settings()
    try:
        template = configured_chat_template(ns.chat_template, settings)
    except ChatTemplateError as exc:
        parser.error(str(exc))
    use_wait_policy(settings.omp_wait_policy)  # before torch and the llama.cpp tools start
    return _publish(
        "prefloop base-release",
        lambda: export_base(ns.base, Quantization(ns.quant), settings, open_store(settings), chat_template=template),
    )


def cmd_ensemble(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop ensemble",
        description="Publish an ensemble release: two or more adapter releases over the same base, served by one "
        "llama-server that asks each member and answers with the one the rule picks. Deploy, gate, promote and roll "
        "it back like any release. Prints the tag.",
        epilog="rules: consensus  the answer closest to the others (minimum Bayes risk by key-fact similarity)\n"
        "       judge      PREFLOOP_SERVER_ENSEMBLE_JUDGE_URL's model picks the best answer\n"
        "example: prefloop ensemble smollm2-135m-dpo-20261206-1 smollm2-135m-dpo-20261206-2 --rule consensus",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("members", nargs="+", metavar="TAG", help="adapter releases over one base (2 to 8)")
    parser.add_argument("--rule", choices=[r.value for r in EnsembleRule], default="consensus", help="default %(default)s")
    ns = parser.parse_args(args)
    from prefloop_exporter.ensemble import make_ensemble

    settings = load_settings()
    return _publish("prefloop ensemble", lambda: make_ensemble(open_store(settings), ns.members, EnsembleRule(ns.rule), settings))


def cmd_releases(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop releases",
        description="Published releases, oldest first, with their mode, quantizations and run. --changelog prints "
        "`date | tag | accuracy | pairs` per trained release, accuracy from the server's release history once QA ran.",
    )
    parser.add_argument("--changelog", action="store_true", help="the changelog instead of the full listing")
    ns = parser.parse_args(args)
    settings = load_settings()
    store = open_store(settings)
    if ns.changelog:
        print("\n".join([HEADER, *changelog(store)]))
        return 0
    print("date       | tag | mode | quantizations | pairs | run | base")
    releases = sorted((store.require(Release, tag) for tag in store.ids(Release)), key=lambda r: r.created_at)
    for r in releases:
        quants = ",".join(q.value for q in r.quantizations)
        pairs = r.pairs if r.pairs is not None else "-"
        print(
            f"{r.created_at:%Y-%m-%d} | {r.tag} | {r.mode.value} | {quants} | {pairs} | "
            f"{r.run_id or ' + '.join(r.members) or '-'} | {r.base_release or '-'}"
        )
    return 0


HANDLERS = {"export": cmd_export, "base-release": cmd_base_release, "ensemble": cmd_ensemble, "releases": cmd_releases}


def main() -> None:
    sys.exit(dispatch("prefloop-exporter", HANDLERS))
