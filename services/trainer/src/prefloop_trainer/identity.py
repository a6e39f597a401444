"""A run's id, made once, from everything that decides what the run trains.

`run-<dataset>-<fingerprint>`: the dataset's content id, then a digest of the resolved config (every field, defaults
filled in, `run_id` itself left out), the base GGUF's content digest (`smollm2` names whatever PREFLOOP_BASE_GGUF points
at), the chat template it trains with, the trainer's version with a digest of its own code, and the versions of the
libraries that do the arithmetic. The same inputs give the same id, so a repeated request finds the published run (or
resumes its checkpoints) instead of training twice; a changed default, trainer or library trains anew.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.metadata import version
from pathlib import Path

from prefloop_core.chat_templates import configured_chat_template
from prefloop_core.ids import check_safe_id
from prefloop_core.settings import Settings
from prefloop_ml.base_model import base_digest

from prefloop_trainer.config import TrainConfig

LIBRARIES = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")


@cache
def trainer_version() -> str:
    """`0.1.0+<digest of the trainer package's source files>`: an edit to the trainer's code is a new version even
    when nobody bumped the number."""
    package = Path(__file__).parent
    digest = hashlib.sha256()
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode() + b"\0" + source.read_bytes() + b"\0")
    return f"{version('prefloop-trainer')}+{digest.hexdigest()[:12]}"


def run_id_for(config: TrainConfig, dataset_id: str, settings: Settings) -> str:
    template = configured_chat_template(config.model.chat_template, settings)
    inputs = {
        "config": config.model_dump(mode="json", exclude={"run_id"}),
        "base_digest": base_digest(config.model.base, settings),
        "chat_template": template.model_dump(mode="json") if template else None,
        "trainer": trainer_version(),
        "libraries": {name: version(name) for name in LIBRARIES},
    }
    fingerprint = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:8]
    return check_safe_id(f"run-{dataset_id.removeprefix('ds-')}-{fingerprint}")
