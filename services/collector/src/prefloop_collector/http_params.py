"""Request parameters the API and the review UI share, bounded by what SQLite stores: an id or version past 2^63 - 1
is refused as the caller's mistake (422), never passed on to fail as a 500."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Path

from prefloop_core.contracts import SQL_INT_MAX

ItemId = Annotated[int, Path(ge=1, le=SQL_INT_MAX, description="The item's id.")]
FormVersion = Annotated[int, Form(ge=0, le=SQL_INT_MAX, description="Version of the item the form was made from.")]
ContributionId = Annotated[int, Path(ge=1, le=SQL_INT_MAX, description="The contributed answer's id.")]
