"""Shared pieces of the collector tests: sample records, the service's environment, a handle on it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from prefloop_core.contracts import QARecord
from prefloop_core.net import NotReady, free_port, wait_until_ready
from prefloop_collector.queue import ReviewQueue
from prefloop_collector.settings import CollectorSettings

TOKENS = {"minji": "minji-token-0123456789", "joon": "joon-token-0123456789"}
ADMIN_TOKEN = "admin-token-0123456789"
NOW = datetime.now(timezone.utc)


def record(n: int, score: float = 0.2, game: str = "minecraft", days_ago: float = 1, **extra: object) -> QARecord:
    fields: dict[str, object] = {
        "record_id": f"rec-{n}",
        "asked_at": NOW - timedelta(days=days_ago),
        "question_id": f"q-{n}",
        "question": f"질문 {n}: 크리퍼는 무엇을 두려워하나요?",
        "game": game,
        "language": "ko",
        "context": f"위키 문단 {n}: 크리퍼는 고양이와 오셀롯을 피해 다닌다.",
        "answer": f"잘 모르겠습니다 {n}",
        "key_facts": ["고양이"],
        "score": score,
        "model": "smollm2-135m-instruct-base",
        **extra,
    }
    return QARecord.model_validate(fields)


def collector_env(home: Path) -> dict[str, str]:
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOOP_")}
    env.update(
        PREFLOOP_HOME=str(home),
        PREFLOOP_COLLECTOR_REVIEWERS=json.dumps(TOKENS),
        PREFLOOP_COLLECTOR_MIN_PAIRS="2",
        PREFLOOP_COLLECTOR_MAX_BODY_MB="1",
        PREFLOOP_COLLECTOR_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    return env


@dataclass
class Collector:
    url: str
    home: Path
    queue: ReviewQueue

    def client(self, reviewer: str | None = "minji") -> httpx.Client:
        headers = {"Authorization": f"Bearer {TOKENS[reviewer]}"} if reviewer else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def running_collector(tmp_path: Path, **env: str) -> Iterator[Collector]:
    """The real collector service (`prefloop-collector review --web`) on a free loopback port; `env` changes its
    environment (a value of "" removes the variable)."""
    home = tmp_path / "home"
    port = free_port()
    exe = str(Path(sys.executable).parent / "prefloop-collector")
    log = open(tmp_path / "collector.log", "wb")
    environment = {k: v for k, v in {**collector_env(home), **env}.items() if v}
    proc = subprocess.Popen([exe, "review", "--web", "--port", str(port)], env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/health", 30, proc)
    except NotReady as exc:
        raise RuntimeError(f"{exc}: {(tmp_path / 'collector.log').read_text()}") from None
    try:
        yield Collector(url, home, ReviewQueue(CollectorSettings(home=home).db_path))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
