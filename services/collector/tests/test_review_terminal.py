"""`prefloop review` driven in a real terminal (tmux): Korean typed in, wide text wrapped and aligned."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_helpers import collector_env, record

from prefloop_core.contracts import ReviewStatus
from prefloop_collector.queue import ReviewQueue
from prefloop_collector.settings import CollectorSettings

WIDTH = 70


def cells(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


class Tmux:
    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.name = f"prefloop-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.startswith(("PREFLOOP_", "PATH", "LANG")))
        shell = f"env {exports} {shlex.join(command)}; echo EXITED-$?; sleep 30"
        subprocess.run(
            ["tmux", "-u", "new-session", "-d", "-s", self.name, "-x", str(WIDTH), "-y", "50", shell],
            check=True,
            env={**env, "LANG": "C.UTF-8"},
        )

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-J", "-S", "-200", "-t", self.name], capture_output=True, text=True, check=True
        ).stdout

    def raw_lines(self) -> list[str]:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-S", "-200", "-t", self.name], capture_output=True, text=True, check=True
        ).stdout.splitlines()

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; screen:\n{self.screen()}")

    def type(self, *lines: str) -> None:
        for line in lines:
            if line:
                subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", line], check=True)
            subprocess.run(["tmux", "send-keys", "-t", self.name, "Enter"], check=True)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    queue = ReviewQueue(CollectorSettings(home=home).db_path)
    long_question = "팰월드에서 " + "초반에 잡기 좋은 팰과 그 팰이 주는 작업 적성은 무엇이고 어디에서 찾을 수 있나요? " * 3
    queue.ingest(
        [
            record(1, score=0.1, question=long_question, context="램볼은 초반 평원에 살며 수작업과 운반 적성이 있다. " * 4),
            record(2, score=0.2),
            record(3, score=0.3),
        ]
    )
    return home


@pytest.fixture
def terminal(home: Path) -> Iterator[Tmux]:
    exe = str(Path(sys.executable).parent / "prefloop-collector")
    tmux = Tmux([exe, "review", "--reviewer", "minji"], collector_env(home))
    yield tmux
    tmux.close()


def test_write_skip_delete_in_a_real_terminal_with_korean(terminal: Tmux, home: Path) -> None:
    screen = terminal.wait_for("q quit")  # the last line printed before the prompt
    assert "[1/3]" in screen and "Existing answer (accuracy 10%" in screen and "1 write the correct answer" in screen

    # Wide characters: every wrapped line fits the terminal and body lines keep their 2-cell indent.
    lines = [line for line in terminal.raw_lines() if line.strip()]
    assert all(cells(line) <= WIDTH for line in lines), [row for row in lines if cells(row) > WIDTH]
    question_at = lines.index("Question")
    body = lines[question_at + 1 : lines.index("Context")]
    assert len(body) >= 3 and all(line.startswith("  ") and not line.startswith("   ") for line in body), body

    terminal.type("1")
    terminal.wait_for("an empty line ends it")
    terminal.type("램볼은 초반 평원에 있습니다.", "수작업과 운반 적성이 있습니다.", "")
    terminal.wait_for("saved (item 1, by minji)")
    terminal.wait_for("[2/3]")
    terminal.type("2")
    terminal.wait_for("[3/3]")
    terminal.type("3")
    terminal.wait_for("Reviewed 3 of 3 item(s) this session.")
    terminal.wait_for("EXITED-0")

    queue = ReviewQueue(CollectorSettings(home=home).db_path)
    first = queue.get(1)
    assert first.chosen == "램볼은 초반 평원에 있습니다.\n수작업과 운반 적성이 있습니다."
    assert first.reviewer == "minji" and first.status is ReviewStatus.CHOSEN
    assert queue.get(2).status is ReviewStatus.SKIPPED and queue.get(3).status is ReviewStatus.DELETED


def test_quit_keeps_what_was_saved_and_a_wrong_key_asks_again(terminal: Tmux, home: Path) -> None:
    terminal.wait_for("q quit")
    terminal.type("x")
    terminal.wait_for("choose 1, 2, 3 or q")
    terminal.type("2")
    terminal.wait_for("[2/3]")
    terminal.type("q")
    terminal.wait_for("Reviewed 1 of 3")
    queue = ReviewQueue(CollectorSettings(home=home).db_path)
    assert [queue.get(i).status for i in (1, 2, 3)] == [ReviewStatus.SKIPPED, ReviewStatus.PENDING, ReviewStatus.PENDING]


def test_a_suggested_answer_can_be_accepted_with_4(tmp_path: Path) -> None:
    from prefloop_core.contracts import CandidateRecord

    home = tmp_path / "home2"
    queue = ReviewQueue(CollectorSettings(home=home).db_path)
    queue.ingest(
        [CandidateRecord(record=record(1, score=0.0), suggestion="크리퍼는 고양이를 두려워합니다.", suggestion_score=1.0)]
    )
    exe = str(Path(sys.executable).parent / "prefloop-collector")
    terminal = Tmux([exe, "review", "--reviewer", "minji"], collector_env(home))
    try:
        screen = terminal.wait_for("q quit")
        assert "Suggested answer (a sample that scored 100%" in screen and "4 accept the suggestion" in screen
        terminal.type("4")
        terminal.wait_for("saved (item 1, by minji)")
    finally:
        terminal.close()
    assert queue.get(1).chosen == "크리퍼는 고양이를 두려워합니다." and queue.get(1).reviewer == "minji"
