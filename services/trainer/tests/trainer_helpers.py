"""The tiny model (SmolLM2's tokenizer, a few random layers) and a synthetic preference set."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from prefloop_core.contracts import ChatMessage, DatasetManifest, PreferencePair
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore

TOPICS = ["creepers", "Lamball", "Tracer", "diamonds", "Palworld bases", "Overwatch tanks", "redstone", "Anubis",
          "Mercy", "villagers", "Chikipi", "Reinhardt", "the Nether", "Pengullet", "Genji", "elytra"]


def build_tiny_model(folder: Path, settings: Settings) -> Path:
    """A 2-layer Llama with SmolLM2's tokenizer and chat template, saved as an HF checkpoint."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from prefloop_ml.base_model import load_tokenizer

    tokenizer = load_tokenizer("smollm2", settings)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def synthetic_pairs(n: int) -> list[PreferencePair]:
    """Pairs with an easy preference: a short factual answer over a refusal."""
    return [
        PreferencePair(
            prompt=[ChatMessage(role="user", content=f"Tell me about {TOPICS[i % len(TOPICS)]} ({i}).")],
            chosen=[ChatMessage(role="assistant", content=f"{TOPICS[i % len(TOPICS)]} is in the wiki: yes.")],
            rejected=[ChatMessage(role="assistant", content="I do not know anything about that, sorry, no idea at all.")],
            item_id=i, game="minecraft",
        )
        for i in range(n)
    ]


def publish_dataset(store: ArtifactStore, pairs: list[PreferencePair], dataset_id: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        path.write_text("".join(json.dumps(p.model_dump(mode="json")) + "\n" for p in pairs))
        store.publish(DatasetManifest(dataset_id=dataset_id, created_at=datetime.now(timezone.utc),
                                      pair_count=len(pairs)), {"pairs.jsonl": path})
    return dataset_id
