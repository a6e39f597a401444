"""`prefloop-trainer train --config FILE [--set key=value ...]` (also the trainer container's command)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from prefloop_core.openmp import use_wait_policy
from prefloop_core.servicecli import dispatch
from prefloop_core.settings import load_settings
from prefloop_core.store import StoreError, open_store
from prefloop_trainer.config import ConfigError, TrainConfig, load_config


def cmd_train(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prefloop train",
        description="Train a LoRA adapter on a dataset snapshot with DPO (or ORPO, KTO, SFT, sft+dpo) through TRL, "
        "and publish the run (adapter, run.json, metrics.json, plots, TensorBoard) to the bucket. "
        "Hardware, dtype, 4-bit and a memory estimate are decided and printed before any weights load.",
        epilog="examples:\n"
        "  prefloop train --set data.dataset_id=ds-0123456789abcdef\n"
        "  prefloop train --config train.yaml --set method.name=orpo --set training.learning_rate=1e-4\n"
        "  prefloop train --print-config > train.yaml     # every field with its default\n"
        "The run id is made from the dataset, the resolved config, the base and the trainer's version: the same\n"
        "command again returns the published run (or resumes a killed one from its last published checkpoint);\n"
        '--set run_id=NAME trains under a name of your own. The last line is `PREFLOOP_RESULT {"run_id": ...}`.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="YAML with sections model, data, method, training, lora, quantization")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one field, e.g. training.epochs=1 (repeatable; wins over the file)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and stop")
    ns = parser.parse_args(args)
    try:
        config = load_config(ns.config, ns.overrides)
    except ConfigError as exc:
        print(f"prefloop train: {exc}", file=sys.stderr)
        return 2
    if ns.print_config:
        print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True), end="")
        return 0
    return run_training(config)


def run_training(config: TrainConfig) -> int:
    settings = load_settings()
    use_wait_policy(settings.omp_wait_policy)  # before torch loads its OpenMP runtime, below
    from prefloop_trainer.callbacks import NonFiniteLoss
    from prefloop_trainer.data import TooFewPairs
    from prefloop_trainer.memory import DoesNotFit
    from prefloop_trainer.run import TrainingOOM, train

    try:
        train(config, settings, open_store(settings))
    except DoesNotFit as exc:
        print(f"prefloop train: refused before loading weights: {exc}", file=sys.stderr)
        for line in exc.estimate.lines():
            print(line, file=sys.stderr)
        return 1
    except (TooFewPairs, NonFiniteLoss, TrainingOOM, StoreError, ValueError, FileNotFoundError) as exc:
        print(f"prefloop train: {exc}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    sys.exit(dispatch("prefloop-trainer", {"train": cmd_train}))
