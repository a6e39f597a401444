"""JSON Lines read leniently: each line's object, or a problem naming the line; one bad line spoils no other."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from prefloop_core.problems import Problem


def json_objects(lines: Iterable[bytes], source: str, what: str = "an entry") -> Iterator[tuple[str, dict[str, Any]] | Problem]:
    """`("line N", object)` per non-blank line, streamed (a big file is never held whole), or the line's problem.
    `what` says in a problem what one line holds ("a record")."""
    for number, raw in enumerate(lines, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte order mark is harmless
        where = f"line {number}"
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Problem(source, where, None, f"not valid UTF-8 (byte {exc.start}); save the file as UTF-8")
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Problem(source, where, None, f"not valid JSON: {exc.msg} at column {exc.colno}")
            continue
        except RecursionError:
            yield Problem(source, where, None, f"JSON nested too deeply: {what} is one object of plain fields")
            continue
        if not isinstance(obj, dict):
            yield Problem(source, where, None, f"expected a JSON object, got {type(obj).__name__}")
            continue
        yield where, obj
