"""Property-based fuzzing of a service's HTTP API from its own OpenAPI document, with hypothesis (tests only).

Every operation the document lists is called with random path and query values (huge and negative integers, any
text) and with JSON bodies that are either random or a valid example with one field changed, dropped or added. A
caller's mistake must come back as a 4xx with a JSON explanation, never a 500 and never a dropped connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, nested a few levels."""
    return st.recursive(
        JSON_SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=12,
    )


def mutated(example: Any) -> st.SearchStrategy[Any]:
    """`example` with one field replaced by any JSON value, dropped, or an unknown one added (each item of a list the
    same way); anything else is replaced outright."""
    if isinstance(example, list):
        return st.lists(mutated(example[0]), max_size=3) if example else st.lists(json_values(), max_size=3)
    if not isinstance(example, dict) or not example:
        return json_values()
    keys = sorted(example)
    replaced = st.tuples(st.sampled_from(keys), json_values()).map(lambda kv: {**example, kv[0]: kv[1]})
    dropped = st.sampled_from(keys).map(lambda k: {n: v for n, v in example.items() if n != k})
    added = st.tuples(st.text(min_size=1, max_size=12), json_values()).map(lambda kv: {**example, kv[0]: kv[1]})
    return replaced | dropped | added


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # with `{name}` placeholders
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    has_body: bool
    examples: tuple[Any, ...] = field(default=())


def operations(openapi: dict[str, Any], examples: dict[str, list[Any]] | None = None) -> list[Operation]:
    """The document's operations; `examples` maps `"METHOD /path"` to valid bodies to mutate."""
    found = []
    for path, methods in sorted(openapi["paths"].items()):
        for method, spec in sorted(methods.items()):
            params = spec.get("parameters", [])
            found.append(
                Operation(
                    method.upper(),
                    path,
                    tuple(p["name"] for p in params if p["in"] == "path"),
                    tuple(p["name"] for p in params if p["in"] == "query"),
                    "requestBody" in spec,
                    tuple((examples or {}).get(f"{method.upper()} {path}", ())),
                )
            )
    return found


ANY_PARAM = (st.integers(min_value=-2, max_value=5) | st.integers(min_value=-(2**70), max_value=2**70)).map(str) | st.text(
    max_size=30
)  # small ids exist in a seeded store, huge ones do not fit SQLite


@st.composite
def requests(draw: st.DrawFn, ops: list[Operation]) -> tuple[str, str, dict[str, str], Any]:
    """(method, url path, query, JSON body or None) for one drawn operation."""
    op = draw(st.sampled_from(ops))
    path = op.path
    for name in op.path_params:
        path = path.replace(f"{{{name}}}", quote(draw(ANY_PARAM), safe="") or "x")
    query = {name: draw(ANY_PARAM) for name in op.query_params if draw(st.booleans())}
    body = None
    if op.has_body:
        from_example = bool(op.examples) and draw(st.booleans())
        body = draw(st.sampled_from(op.examples).flatmap(mutated) if from_example else json_values())
    return op.method, path, query, body
