"""Fuzzing a user's mistakes: the collector's API from its OpenAPI document, and `import` files (hypothesis).
Whatever arrives, the answer is a 2xx or a 4xx with a JSON explanation, never a 500 or a traceback."""

from __future__ import annotations

import json

from collector_helpers import Collector, record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefloop_core.fuzz import json_values, operations, requests
from prefloop_collector.importer import parse_import

BODIES = {
    "POST /api/items/{item_id}/chosen": [{"chosen": "고양이요.", "version": 0}],
    "POST /api/items/{item_id}/{action}": [{"version": 0}],
    "POST /api/ingest": [[record(1).model_dump(mode="json")]],
    "POST /api/import": [[{"question": "q", "rejected": "a", "chosen": "b", "game": "minecraft"}]],
}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_request_gets_a_500(collector: Collector, data: st.DataObject) -> None:
    client = collector.client()
    if not collector.queue.items():
        collector.queue.ingest([record(i) for i in range(3)])
    ops = operations(client.get("/openapi.json").json(), BODIES)
    method, path, query, body = data.draw(requests(ops))
    response = (
        client.request(method, path, params=query, json=body) if body is not None else client.request(method, path, params=query)
    )
    assert response.status_code < 500, (method, path, query, body, response.text)
    response.json()  # an explanation a client can read


@settings(max_examples=300, deadline=None)
@given(
    value=json_values()
    | st.lists(
        st.dictionaries(
            st.sampled_from(
                ["question", "rejected", "chosen", "game", "context", "prompt", "id", "instruction", "input", "role", "content"]
            ),
            json_values(),
        ),
        max_size=3,
    )
)
def test_any_import_file_is_read_or_refused_with_problems(value: object) -> None:
    parsed = parse_import(json.dumps(value).encode(), "fuzz.json", 10_000)
    assert parsed.entries or parsed.problems or value == []
    assert not (parsed.entries and parsed.problems)  # all or nothing
    assert all(p.message for p in parsed.problems)
