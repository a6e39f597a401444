"""Fuzzing a user's mistakes: the server's admin API and router from its OpenAPI document (hypothesis), with a model
live so that the router's requests reach a llama-server. Whatever arrives, the answer is a 2xx or a 4xx with a JSON
explanation (503 if a fuzzed rollback or discard leaves nothing live), never a 500."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import Server, easy_qa_set

from prefloop_core.fuzz import operations, requests

QA_SET = easy_qa_set().model_dump(mode="json")
BODIES = {
    "POST /admin/deploy": [{"tag": "good", "trigger": "fuzz"}],
    "POST /admin/promote": [{"tag": "good", "trigger": "fuzz", "force": True, "reason": "fuzz"}],
    "POST /admin/rollback": [{"trigger": "fuzz", "tag": "good-copy"}],
    "POST /admin/discard": [{"trigger": "fuzz"}],
    "POST /admin/gate": [{"qa_set": QA_SET}],
    "POST /admin/qa": [{"qa_set": QA_SET}],
    "POST /admin/candidates": [{"qa_set": QA_SET, "samples": 2, "temperature": 0.8}],
    "POST /v1/chat/completions": [{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}],
    "POST /v1/completions": [{"prompt": "Hi", "max_tokens": 2}],
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_request_gets_a_500(server: Server, data: st.DataObject) -> None:
    admin = server.admin()
    if admin.get("/admin/status").json()["live_tag"] is None:  # requests to /v1 reach a llama-server
        admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
        admin.post("/admin/promote", json={"tag": "good"}).raise_for_status()
    ops = operations(admin.get("/openapi.json").json(), BODIES)
    method, path, query, body = data.draw(requests(ops))
    response = (
        admin.request(method, path, params=query, json=body) if body is not None else admin.request(method, path, params=query)
    )
    nothing_live = response.status_code == 503 and (path.startswith("/v1/") or path == "/health")
    assert response.status_code < 500 or nothing_live, (method, path, query, body, response.text)
    response.json()
