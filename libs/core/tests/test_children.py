"""Children that die with their parent, and the record that stops what a killed service left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from prefloop_core.children import ChildRecord, die_with_parent, stop_recorded
from prefloop_core.testing import process_gone as gone


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_child_dies_when_its_parent_is_killed_hard() -> None:
    # A parent that starts a long sleep as its child the way the server starts a slot, prints its pid, then waits.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import subprocess, sys, time\n"
                "from prefloop_core.children import die_with_parent\n"
                "child = subprocess.Popen(['sleep', '300'], process_group=0, preexec_fn=die_with_parent())\n"
                "print(child.pid, flush=True)\n"
                "time.sleep(300)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert not gone(child, within_s=0.2)
    assert os.getpgid(child) == child  # a process group of its own: a Ctrl-C for the parent does not reach it
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    assert gone(child), "the child outlived its parent"


def test_the_record_stops_only_what_a_dead_service_left(tmp_path: Path) -> None:
    leftover = subprocess.Popen(["sleep", "3001"], preexec_fn=die_with_parent())
    others = subprocess.Popen(["sleep", "3002"], preexec_fn=die_with_parent())
    living_service = subprocess.Popen(["sleep", "3003"], preexec_fn=die_with_parent())
    reused = subprocess.Popen(["sleep", "3004"], preexec_fn=die_with_parent())  # a pid now held by something else
    try:
        ChildRecord(leftover.pid, ("sleep", "3001"), parent=dead_pid()).save(tmp_path / "slot-blue.pid.json")
        ChildRecord(others.pid, ("sleep", "3002"), parent=living_service.pid).save(tmp_path / "slot-green.pid.json")
        ChildRecord(dead_pid(), ("sleep",), parent=dead_pid()).save(tmp_path / "slot-old.pid.json")  # already gone
        (tmp_path / "slot-broken.pid.json").write_text("{not json")
        ChildRecord(reused.pid, ("llama-server", "--port 1"), parent=dead_pid()).save(tmp_path / "slot-reused.pid.json")

        assert stop_recorded(tmp_path, "slot-*.pid.json") == [leftover.pid]
        assert leftover.wait(timeout=10) == -signal.SIGKILL
        assert others.poll() is None and reused.poll() is None  # another live service's child; not the recorded one
        assert sorted(p.name for p in tmp_path.iterdir()) == ["slot-green.pid.json"]
    finally:
        for proc in (leftover, others, living_service, reused):
            proc.kill()
            proc.wait()
