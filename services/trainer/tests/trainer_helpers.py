"""A synthetic preference set and publishing it (the tiny model comes from prefloop_ml.testing)."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from prefloop_core.contracts import ChatMessage, DatasetManifest, PreferencePair
from prefloop_core.store import ArtifactStore

TOPICS = [
    "creepers",
    "Lamball",
    "Tracer",
    "diamonds",
    "Palworld bases",
    "Overwatch tanks",
    "redstone",
    "Anubis",
    "Mercy",
    "villagers",
    "Chikipi",
    "Reinhardt",
    "the Nether",
    "Pengullet",
    "Genji",
    "elytra",
]


def synthetic_pairs(n: int) -> list[PreferencePair]:
    """Pairs with an easy preference: a short factual answer over a refusal."""
    return [
        PreferencePair(
            prompt=[ChatMessage(role="user", content=f"Tell me about {TOPICS[i % len(TOPICS)]} ({i}).")],
            chosen=[ChatMessage(role="assistant", content=f"{TOPICS[i % len(TOPICS)]} is in the wiki: yes.")],
            rejected=[ChatMessage(role="assistant", content="I do not know anything about that, sorry, no idea at all.")],
            item_id=i,
            game="minecraft",
        )
        for i in range(n)
    ]


def publish_dataset(store: ArtifactStore, pairs: list[PreferencePair], dataset_id: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        path.write_text("".join(json.dumps(p.model_dump(mode="json")) + "\n" for p in pairs))
        store.publish(
            DatasetManifest(dataset_id=dataset_id, created_at=datetime.now(timezone.utc), pair_count=len(pairs)),
            {"pairs.jsonl": path},
        )
    return dataset_id
