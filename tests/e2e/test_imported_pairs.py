"""Preference data brought from elsewhere trains: the DPO guide's JSON, TRL's standard JSON Lines and conversational
pairs, and an evaluation file, imported with `prefloop import` as a person runs it, snapshotted, and trained on a tiny
model with the real trainer, which evaluates on the imported evaluation pairs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import VENVS, clean_environment

from prefloop_core.contracts import DatasetManifest, JobResult, TrainingRun
from prefloop_core.settings import Settings
from prefloop_core.store import open_store

GUIDE = [  # the DPO guide's example as it tells people to prepare it: both prompt forms
    {
        "prompt": "Python에서 리스트와 튜플의 차이점을 설명하세요.",
        "chosen": "리스트는 변경할 수 있고 튜플은 변경할 수 없습니다.",
        "rejected": "둘은 같습니다.",
    },
    {
        "prompt": {"instruction": "다음 문장을 번역하세요.", "input": "Hello, world!"},
        "chosen": "안녕, 세상!",
        "rejected": "Hello!",
    },
]
COLOURS = ["blue", "green", "red", "white", "black", "yellow"]
STANDARD = [  # TRL's standard format, with a score column the import ignores
    {"prompt": f"What colour is thing {i}?", "chosen": f"Thing {i} is {c}.", "rejected": "I don't know.", "score": 1}
    for i, c in enumerate(COLOURS)
]
CONVERSATIONAL = [  # TRL's conversational format with an implicit prompt
    {
        "chosen": [{"role": "user", "content": f"크리퍼 {i}는 무엇을 두려워하나요?"}, {"role": "assistant", "content": "고양이"}],
        "rejected": [{"role": "user", "content": f"크리퍼 {i}는 무엇을 두려워하나요?"}, {"role": "assistant", "content": "물"}],
    }
    for i in range(2)
]
EVALUATION = [{"prompt": f"What colour is the sky on day {i}?", "chosen": "Blue.", "rejected": "Green."} for i in range(3)]


def test_pairs_imported_in_other_formats_train_and_the_trainer_evaluates_on_the_imported_evaluation_file(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    env = {**clean_environment(), "PREFLOOP_HOME": str(home), "PREFLOOP_COLLECTOR_MIN_PAIRS": "2"}

    def collector(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(VENVS / "collector/bin/prefloop-collector"), *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    files = {
        "guide.json": json.dumps(GUIDE, ensure_ascii=False, indent=2),
        "trl.jsonl": "".join(json.dumps(e) + "\n" for e in STANDARD),
        "chat.json": json.dumps(CONVERSATIONAL, ensure_ascii=False),
        "eval.jsonl": "".join(json.dumps(e) + "\n" for e in EVALUATION),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert "imported 2 pair(s)" in collector("import", str(tmp_path / "guide.json")).stdout
    assert "ignored field(s): score" in collector("import", str(tmp_path / "trl.jsonl")).stdout
    assert "2 conversational entries" in collector("import", str(tmp_path / "chat.json")).stdout
    assert "imported 3 pair(s) for evaluation" in collector("import", str(tmp_path / "eval.jsonl"), "--split", "eval").stdout
    manifest = DatasetManifest.model_validate_json(collector("snapshot", "--json").stdout)
    assert manifest.pair_count == 13 and manifest.games == {"other": 10}

    tiny = tmp_path / "tiny"
    subprocess.run(
        [
            str(VENVS / "trainer/bin/python"),
            "-c",
            "from pathlib import Path; from prefloop_core.settings import Settings; "
            "from prefloop_ml.testing import build_tiny_model; "
            f"build_tiny_model(Path({str(tiny)!r}), Settings(home=Path({str(tmp_path / 'tiny-home')!r})))",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    config = tmp_path / "train.yaml"
    config.write_text(
        f"model:\n  base: {tiny}\ndata:\n  dataset_id: {manifest.dataset_id}\n  max_length: 96\n  min_pairs: 2\n"
        "training:\n  batch_size: 2\n  grad_accumulation: 1\n  max_steps: 4\n  checkpoint_steps: 2\n"
    )
    trained = subprocess.run(
        [str(VENVS / "trainer/bin/prefloop-trainer"), "train", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    log = trained.stdout + trained.stderr
    assert trained.returncode == 0, log[-3000:]
    assert "10 training pairs, 3 for evaluation" in log, log[-3000:]
    assert "evaluates on the dataset's 3 pairs imported for it (--split eval)" in log
    result = JobResult.last_in(trained.stdout.splitlines())
    assert result is not None and result.run_id
    store = open_store(Settings(home=home))
    run = store.require(TrainingRun, result.run_id)
    assert run.dataset_id == manifest.dataset_id
    evaluated = json.loads(store.read_bytes(run, "metrics.json"))["eval"]
    assert evaluated and all("eval_loss" in row for row in evaluated)
