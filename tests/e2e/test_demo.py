"""`prefloop demo` on the embedded default, run as a person would: a real llama-server answers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_demo(home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOOP_")}
    env.update(
        PREFLOOP_HOME=str(home),
        PREFLOOP_VENVS_DIR=os.environ["PREFLOOP_VENVS_DIR"],
        PREFLOOP_LLAMA_CPP_DIR=os.environ["PREFLOOP_LLAMA_CPP_DIR"],
    )
    return subprocess.run([str(REPO / "prefloop"), "demo"], capture_output=True, text=True, env=env, timeout=300)


def test_demo_publishes_fetches_and_serves_the_base_model(tmp_path: Path) -> None:
    first = run_demo(tmp_path / "home")
    assert first.returncode == 0, first.stderr + first.stdout
    assert "release smollm2-135m-instruct-base: published" in first.stdout
    assert "size and sha256 verified" in first.stdout
    answers = [line for line in first.stdout.splitlines() if line.strip().startswith("A:")]
    assert len(answers) == 2 and all(len(a.split("A:", 1)[1].strip()) > 0 for a in answers), first.stdout

    second = run_demo(tmp_path / "home")  # idempotent: the release is not published twice
    assert second.returncode == 0, second.stderr
    assert "already published, same content: nothing to do" in second.stdout
