"""Loading a QA set file (JSON: {"name", "questions": [...]}) with problems pinned to item and field."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from prefloop_core.contracts import QASet
from prefloop_core.problems import Problem, problems_from


class QASetError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def load_qa_set(path: Path) -> QASet:
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise QASetError([Problem(source, "", None, f"cannot read: {exc.strerror}")]) from None
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise QASetError([Problem(source, "", None, "not valid UTF-8; save the file as UTF-8")]) from None
    except json.JSONDecodeError as exc:
        raise QASetError([Problem(source, f"line {exc.lineno}", None, f"not valid JSON: {exc.msg}")]) from None
    try:
        return QASet.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for problem in problems_from(exc, source, ""):
            field = problem.field or ""
            if field.startswith("questions."):  # "questions.3.key_facts" -> item 3, field key_facts
                _, index, *rest = field.split(".")
                problem = Problem(source, f"question {index}", ".".join(rest) or None, problem.message)
            problems.append(problem)
        raise QASetError(problems) from None
