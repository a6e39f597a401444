"""Child processes that do not outlive the service that started them, even when it is killed with SIGKILL.

A service that is killed hard runs no cleanup, so its children must be told by the kernel: on Linux each child asks
for SIGKILL when its parent dies (`prctl(PR_SET_PDEATHSIG)`, set between fork and exec). The kernel sends it when
the *thread* that started the child ends, so start long-lived children from a thread that lives as long as the
service (the asyncio event loop's, for the server's slots). Each child also gets a process group of its own, so a
Ctrl-C meant for the service reaches the service, which then stops its children in order.

Where PR_SET_PDEATHSIG does not exist (macOS), the record of what was started (`ChildRecord`) lets the next start of
the service stop what the last one left.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1
# Looked up once, in the parent: between fork and exec the child only calls it (no dlopen, no import there, which
# could wait forever on a lock another thread of the parent held when it forked).
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen: SIGKILL this child when the process starting it dies (Linux)."""
    if _prctl is None:
        return None
    prctl, parent, sigkill = _prctl, os.getpid(), int(signal.SIGKILL)

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sigkill)
        if os.getppid() != parent:  # the parent died before the request was made: nobody would send the signal
            os._exit(1)

    return preexec


@dataclass(frozen=True)
class ChildRecord:
    """What a service started, written beside its logs while the child runs: enough to recognise the process (its
    pid, and words its command line holds, since pids are reused) and stop it at the next start."""

    pid: int
    words: tuple[str, ...]  # e.g. the executable and its port: ("/.../llama-server", "--port 41235")
    parent: int = field(default_factory=os.getpid)  # the service that started it (default: this process)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")

    def running(self) -> bool:
        """The recorded process still runs (and is the one recorded, by its command line)."""
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        return all(word in cmdline for word in self.words)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_recorded(folder: Path, pattern: str = "*.json") -> list[int]:
    """Stop every recorded child in `folder` whose parent is gone and that still runs (SIGKILL), and forget those
    records; the pids stopped. A record whose parent still runs is another live service's: left alone."""
    stopped = []
    for path in sorted(folder.glob(pattern)):
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
            record = ChildRecord(int(fields["pid"]), tuple(fields["words"]), int(fields["parent"]))
        except (OSError, ValueError, TypeError, KeyError):
            record = None
        if record is not None and record.parent != os.getpid() and _alive(record.parent):
            continue
        if record is not None and record.running():
            try:
                os.kill(record.pid, signal.SIGKILL)
                stopped.append(record.pid)
            except ProcessLookupError:
                pass
        path.unlink(missing_ok=True)
    return stopped
