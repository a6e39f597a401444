"""Loopback helpers: a free port to bind a local process to, waiting until it answers, and stopping it."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class NotReady(RuntimeError):
    pass


def wait_until_ready(
    url: str,
    timeout_s: float,
    process: subprocess.Popen | None = None,  # type: ignore[type-arg]
    headers: dict[str, str] | None = None,
) -> None:
    """Poll `url` until it answers 200; NotReady if the process exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(url, headers=headers or {})
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NotReady(f"the process serving {url} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise NotReady(f"{url} did not answer 200 within {timeout_s:.0f} s")


def stop_process(process: subprocess.Popen, timeout_s: float = 20) -> None:  # type: ignore[type-arg]
    """Ask the process to stop (SIGTERM); kill it if it has not after `timeout_s`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
