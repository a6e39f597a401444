"""`prefloop`, the one command for people: each stage's subcommand runs in its own service.

The collector, trainer, exporter, server and flows are separate packages with separate
dependencies (in separate containers in compose), so this command only finds the stage's
service command (`prefloop-<service>`) and hands over to it; it imports none of them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from prefloop_core.settings import Settings, SettingsError, load_settings, settings_lines

# stage -> (service, what it does); the order is the loop's order.
STAGES: dict[str, tuple[str, str]] = {
    "collect": ("collector", "read QA logs; queue every answer at or under the threshold for review"),
    "status": ("collector", "dataset status: rejected, chosen, pending, trainable pairs, balance"),
    "review": ("collector", "review queued answers in the terminal (--web: the review UI and API)"),
    "import": ("collector", "import reviewed pairs from a JSON file (all or nothing)"),
    "template": ("collector", "write pending items as a JSON template to hand out and import back"),
    "offer": ("collector", "offer pending questions to contributors (or --withdraw them)"),
    "contributors": ("collector", "invite, list and revoke contributors (people who answer offered questions)"),
    "snapshot": ("collector", "publish the reviewed pairs as an immutable dataset"),
    "train": ("trainer", "train a LoRA adapter with DPO/ORPO/KTO on a dataset snapshot"),
    "export": ("exporter", "merge, convert to GGUF and quantize a run into a release"),
    "base-release": ("exporter", "export a base model alone (verified), to serve before the first round"),
    "ensemble": ("exporter", "combine adapter releases over one base into an ensemble release"),
    "releases": ("exporter", "list published releases"),
    "serve": ("server", "run the router with blue/green llama-server slots"),
    "deploy": ("server", "load a release into the idle slot"),
    "promote": ("server", "send traffic to the release the QA gate accepted (or --force, with a reason)"),
    "rollback": ("server", "put an earlier release back in service"),
    "discard": ("server", "unload the candidate from the idle slot"),
    "slots": ("server", "what each slot serves, which is live, and the release history"),
    "qa": ("server", "run a QA set against an endpoint and score every answer"),
    "gate": ("server", "decide offline from two files of QA records: would the QA gate accept the candidate?"),
    "demo": ("flows", "run the loop end to end on the embedded default"),
    "improve": ("flows", "run the improve flow once: snapshot, train, export, QA gate, promote"),
    "deployments": ("flows", "serve the flows as Prefect deployments (collect daily, the rest on demand)"),
}


# service -> its settings class, read in the service's own environment (this command imports no service)
SERVICE_SETTINGS = {
    "collector": "prefloop_collector.settings:CollectorSettings",
    "server": "prefloop_server.settings:ServerSettings",
    "flows": "prefloop_flows.settings:FlowsSettings",
}


def service_command(service: str, settings: Settings) -> Path | None:
    """The `prefloop-<service>` executable: beside this Python, in the venvs folder, or on PATH."""
    name = f"prefloop-{service}"
    candidates = [Path(sys.executable).parent / name]
    if settings.venvs_dir is not None:
        candidates.append(settings.venvs_dir / service / "bin" / name)
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    return next((path for path in candidates if path.is_file() and os.access(path, os.X_OK)), None)


def build_parser() -> argparse.ArgumentParser:
    lines = [f"  {stage:<12} {what}   [{service}]" for stage, (service, what) in STAGES.items()]
    parser = argparse.ArgumentParser(
        prog="prefloop",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Keep a locally served LLM improving from the answers people find wrong:\n"
        "QA -> collect -> review -> snapshot -> train -> export -> deploy -> QA gate -> promote.",
        epilog="stages (each runs in its service; `prefloop STAGE --help` for its options):\n"
        + "\n".join(lines)
        + "\n\nother:\n  config    print the settings in effect, shared and each service's (secrets hidden)\n"
        "  gc        remove what killed publishes left in the bucket (--dry-run lists it)\n\n"
        "Settings come from PREFLOOP_* environment variables or .env: docs/configuration.md lists them.",
    )
    parser.add_argument("stage", choices=[*STAGES, "config", "gc"], metavar="STAGE", help="what to do (listed below)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the stage's own arguments")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    ns = parser.parse_args(argv)
    try:
        settings: Settings = load_settings()
    except SettingsError as exc:
        print(f"prefloop: {exc}", file=sys.stderr)
        return 2
    if ns.stage == "gc":
        return gc(settings, ns.args)
    if ns.stage == "config":
        return config(settings, ns.args)
    service, _ = STAGES[ns.stage]
    command = service_command(service, settings)
    if command is None:
        print(
            f"prefloop {ns.stage}: the {service} service is not installed here (looked for "
            f"prefloop-{service} beside {sys.executable}, in PREFLOOP_VENVS_DIR and on PATH). "
            "Run `make setup`, or install services/" + service,
            file=sys.stderr,
        )
        return 2
    os.execv(command, [str(command), ns.stage, *ns.args])
    return 0  # pragma: no cover - execv does not return


def config(settings: Settings, args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop config",
        description="Print the settings in effect here as PREFLOOP_* lines, as you would write them in .env (secrets "
        "as asterisks): the ones every service shares, then the collector's, the server's and the flows' own, each "
        "read in that service's environment. The trainer reads a YAML config of its own (`prefloop train --help`).",
        epilog="what each setting means, and its default: docs/configuration.md",
    )
    parser.parse_args(args)
    print("# every service")
    print("\n".join(settings_lines(settings)))
    status = 0
    for service, settings_class in SERVICE_SETTINGS.items():
        command = service_command(service, settings)
        python = (
            next((p for p in (command.parent / "python", command.parent / "python3") if p.is_file()), None) if command else None
        )
        if python is None:
            print(f"\n# {service}: not installed here")
            continue
        shown = subprocess.run(
            [str(python), "-m", "prefloop_core.settings", "--show", settings_class], capture_output=True, text=True, timeout=120
        )
        if shown.returncode != 0:
            print(f"prefloop config: {service}: {shown.stderr.strip()}", file=sys.stderr)
            status = 2
            continue
        print(f"\n# {service}")
        print(shown.stdout, end="")
    return status


def gc(settings: Settings, args: list[str]) -> int:
    from datetime import timedelta

    from prefloop_core.store import open_store
    from prefloop_core.store.gc import leftovers, remove

    parser = argparse.ArgumentParser(
        prog="prefloop gc",
        description="Remove what publishes that were killed part-way left in the bucket: "
        "temporary files of unfinished uploads, and data of artifacts whose manifest was never written. Nothing "
        "published is touched, and nothing newer than --older-than (a publish may still be under way).",
        epilog="examples:\n  prefloop gc --dry-run\n  prefloop gc --older-than 0   # right after a crash, "
        "nothing else publishing",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--older-than",
        type=float,
        default=24.0,
        metavar="HOURS",
        help="only what was last written this many hours ago or earlier (default: %(default)g)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    ns = parser.parse_args(args)
    if ns.older_than < 0:
        parser.error("--older-than: give 0 or more hours")
    store = open_store(settings)
    found = leftovers(store, timedelta(hours=ns.older_than))
    for leftover in found:
        print(f"{leftover.key}  {leftover.size / 1e6:.1f} MB  ({leftover.why})")
    total = sum(leftover.size for leftover in found) / 1e6
    if ns.dry_run:
        print(f"would remove {len(found)} object(s), {total:.1f} MB, from {store.backend.describe()}")
        return 0
    remove(store, found)
    print(f"removed {len(found)} object(s), {total:.1f} MB, from {store.backend.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
