"""A problem found in a user's input, pinned to where it is: file and line, or item index, and field."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True)
class Problem:
    source: str  # a file path, or what was sent ("request body")
    where: str  # "line 12", "item 3", or "" for the whole source
    field: str | None
    message: str
    index: int | None = None  # the entry's place in a list, for a caller that points at it (an API body)

    def __str__(self) -> str:
        place = (
            f"{self.source}:{self.where.removeprefix('line ')}"
            if self.where.startswith("line ")
            else (f"{self.source} {self.where}" if self.where else self.source)
        )
        return f"{place}: {self.field}: {self.message}" if self.field else f"{place}: {self.message}"


def problems_from(
    exc: ValidationError, source: str, where: str, index: int | None = None, tags: Collection[str] = ()
) -> list[Problem]:
    """One Problem per pydantic error, naming the field by its dotted path; `tags` are the members of a tagged union,
    which pydantic puts in the path and a person never wrote (`prompt.parts.instruction` reads `prompt.instruction`)."""
    found = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"] if part not in tags) or None
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field; remove it (or check its spelling)"
        elif err["type"] == "missing":
            message = "required field is missing"
        found.append(Problem(source, where, field, message, index))
    return found
