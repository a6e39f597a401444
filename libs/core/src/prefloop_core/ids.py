"""Artifact ids: what a dataset id, run id and release tag may look like, and how new ones are made.

Ids end up in bucket keys and file paths, so they are validated in one place and
never contain a path separator, a leading dot or `..`.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_safe_id(value: str) -> str:
    """Return `value` if it can be used as one path segment of a key, else raise ValueError."""
    if not _SAFE_ID.fullmatch(value) or ".." in value:
        raise ValueError(
            f"{value!r} is not a valid id: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..'"
        )
    return value


SafeId = Annotated[str, AfterValidator(check_safe_id)]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def check_slug(value: str) -> str:
    """A short lowercase name (a game, a reviewer): no spaces, no path separators."""
    value = value.strip().lower()
    if not _SLUG.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid name: use 1-64 lowercase letters, digits, '_' or '-' (e.g. 'minecraft')")
    return value


Slug = Annotated[str, AfterValidator(check_slug)]


def dataset_id_for(content_sha256: str) -> str:
    """A dataset id is its content hash, so the same pairs always get the same id."""
    return f"ds-{content_sha256[:16]}"


def release_tag(base_short: str, method: str, day: datetime, n: int) -> str:
    """Release tag `<base-short>-<method>-<YYYYMMDD>-<n>`, e.g. `smollm2-135m-dpo-20261122-1`."""
    return check_safe_id(f"{base_short}-{method}-{day:%Y%m%d}-{n}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
