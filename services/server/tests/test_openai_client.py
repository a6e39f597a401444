"""The official `openai` client works against the router unchanged, streaming too."""

from __future__ import annotations

import openai
from server_helpers import Server


def test_the_openai_client_works_unchanged(server: Server) -> None:
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/promote", json={"tag": "good"}).raise_for_status()
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")

    assert [m.id for m in client.models.list().data] == ["good"]
    reply = client.chat.completions.create(
        model="good", messages=[{"role": "user", "content": "What is the capital of France? Answer in a few words."}],
        max_tokens=16, temperature=0,
    )
    assert "Paris" in reply.choices[0].message.content
    stream = client.chat.completions.create(
        model="good", messages=[{"role": "user", "content": "What is the opposite of hot? Answer in a few words."}],
        max_tokens=16, temperature=0, stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert "cold" in text.lower()
    completion = client.completions.create(model="good", prompt="The capital of France is", max_tokens=4, temperature=0)
    assert completion.choices[0].text.strip()
