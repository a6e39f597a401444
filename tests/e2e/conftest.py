"""What the end-to-end tests share: a small QA set, and a home whose bucket already holds the verified base release
(made once per session with `prefloop-exporter base-release`, then hard-linked into each test's own home)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from prefloop_flows.bundled import load_qa_set

VENVS = Path(os.environ["PREFLOOP_VENVS_DIR"])


def clean_environment() -> dict[str, str]:
    """This process's environment without any PREFLOOP_/PREFECT_ setting, except where the tools are."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFLOOP_", "PREFECT_"))}
    return {**env, "PREFLOOP_VENVS_DIR": str(VENVS), "PREFLOOP_LLAMA_CPP_DIR": os.environ["PREFLOOP_LLAMA_CPP_DIR"]}


@pytest.fixture
def small_qa_file(tmp_path: Path) -> Path:
    """Two questions per game and language (one train, one held out): 12 of the bundled 72."""
    full = load_qa_set()
    picked, seen = [], set()
    for question in full.questions:
        key = (question.game, question.language, question.split)
        if key not in seen:
            seen.add(key)
            picked.append(question)
    path = tmp_path / "qa.json"
    path.write_text(full.model_copy(update={"name": "games-v1-small", "questions": picked}).model_dump_json())
    return path


@pytest.fixture(scope="session")
def base_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("base-home")
    subprocess.run([str(VENVS / "exporter/bin/prefloop-exporter"), "base-release"], env={**clean_environment(),
                   "PREFLOOP_HOME": str(home)}, check=True, capture_output=True, timeout=600)
    return home


@pytest.fixture
def home(tmp_path: Path, base_home: Path) -> Path:
    """A fresh home for one test, its bucket already holding the base release (files are immutable: links suffice)."""
    return Path(shutil.copytree(base_home, tmp_path / "home", copy_function=os.link))
