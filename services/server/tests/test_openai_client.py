"""The official `openai` client works against the router unchanged, streaming too."""

from __future__ import annotations

import httpx
import openai
import pytest
from server_helpers import Server


def test_the_openai_client_works_unchanged(server: Server) -> None:
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/promote", json={"tag": "good"}).raise_for_status()
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")

    assert [m.id for m in client.models.list().data] == ["good"]
    reply = client.chat.completions.create(
        model="good",
        messages=[{"role": "user", "content": "What is the capital of France? Answer in a few words."}],
        max_tokens=16,
        temperature=0,
    )
    assert "Paris" in reply.choices[0].message.content
    stream = client.chat.completions.create(
        model="good",
        messages=[{"role": "user", "content": "What is the opposite of hot? Answer in a few words."}],
        max_tokens=16,
        temperature=0,
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert "cold" in text.lower()
    completion = client.completions.create(model="good", prompt="The capital of France is", max_tokens=4, temperature=0)
    assert completion.choices[0].text.strip()


def test_the_routers_own_errors_reach_the_openai_client_with_their_message(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "Hello"}]

    with pytest.raises(openai.InternalServerError) as nothing_live:
        client.chat.completions.create(model="any", messages=messages, max_tokens=4)
    assert nothing_live.value.status_code == 503
    assert "no model is live yet: deploy and promote a release" in str(nothing_live.value)
    assert nothing_live.value.code == "model_not_live"

    with pytest.raises(openai.APIStatusError) as too_large:  # the default limit is 4 MB
        client.chat.completions.create(model="any", messages=[{"role": "user", "content": "x" * 5_000_000}], max_tokens=4)
    assert too_large.value.status_code == 413
    assert "request body is over the limit of 4,194,304 bytes (PREFLOOP_SERVER_MAX_BODY_MB)" in str(too_large.value)

    with pytest.raises(openai.NotFoundError) as unknown:
        client.post("/embeddings-of-nothing", cast_to=object, body={})
    assert "Not Found: POST /v1/embeddings-of-nothing" in str(unknown.value) and unknown.value.code == "unknown_url"

    # The admin API keeps FastAPI's shape.
    assert server.admin().get("/admin/nothing-here").json() == {"detail": "Not Found"}


def test_a_body_llama_server_would_fail_on_is_refused_by_the_router(server: Server) -> None:
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/promote", json={"tag": "good"}).raise_for_status()
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as bad_role:
        client.chat.completions.create(model="good", messages=[{"role": 5, "content": "Hi"}], max_tokens=2)  # type: ignore[list-item]
    assert "messages[0].role: must be a string" in str(bad_role.value)
    for body in (b"", b"not json", b"[1, 2]"):
        response = httpx.post(f"{server.url}/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error", body
