"""Pieces every contract shares: the base model, schema versions, and the artifact envelope."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
SQL_INT_MAX = 2**63 - 1  # the largest id, version or offset SQLite stores; a bigger one is the caller's mistake
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_text(value: str) -> str:
    """A question or an answer a person wrote: something besides whitespace, and no control characters (NUL, escape
    codes) that nothing would display, no tokenizer expects and every later step would trip over."""
    if not value.strip():
        raise ValueError("is empty or only whitespace: write the text")
    if bad := _CONTROL.search(value):
        raise ValueError(f"holds the control character {bad.group()!r} at position {bad.start()}: remove it")
    return value


Text = Annotated[str, AfterValidator(check_text)]


class Contract(BaseModel):
    """Base of every contract crossing a boundary: strict about unknown fields, versioned."""

    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)

    schema_version: int = Field(
        default=SCHEMA_VERSION,
        description="Version of this record's schema; readers refuse versions newer than they know.",
    )

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value < 1 or value > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {value} is not supported by this prefloop "
                f"(knows 1..{SCHEMA_VERSION}); upgrade prefloop to read it"
            )
        return value


class ArtifactKind(str, enum.Enum):
    """Top-level folders of the bucket, one per kind of published artifact."""

    DATASET = "datasets"
    RUN = "runs"
    RELEASE = "models"
    QA_REPORT = "qa"
    CHECKPOINT = "checkpoints"


class StoredFile(BaseModel):
    """One data object of an artifact, as recorded in its manifest."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="Object key in the bucket (content-addressed, under the artifact's prefix).")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the file's bytes, hex.")
    size: int = Field(ge=0, description="Size in bytes.")


class ChatMessage(BaseModel):
    """One message of a conversation, in the OpenAI / TRL conversational shape."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class ChatTemplate(BaseModel):
    """A chat template given to a base model in place of its own (which a base model usually lacks): what the trainer
    formatted pairs with, recorded in the run and in every release made from it, and written into every GGUF."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="A bundled template's name (gemma, chatml) or the Jinja file it was read from.")
    text: str = Field(min_length=1, max_length=65536, description="The Jinja template itself.")

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    def label(self) -> str:
        """How a person reads it: `gemma (sha256 1a2b3c4d5e6f)`."""
        return f"{self.name} (sha256 {self.digest})"


class Artifact(Contract):
    """An immutable, published bundle of files plus this manifest, written last.

    Subclasses name their kind (the bucket folder), the manifest's file name and the
    field that holds the id. `published_at` and the fields in `volatile_fields` are not
    part of the content: re-publishing the same files and metadata is a no-op even if
    those differ.
    """

    kind: ClassVar[ArtifactKind]
    manifest_name: ClassVar[str]
    id_field: ClassVar[str]
    volatile_fields: ClassVar[frozenset[str]] = frozenset()

    files: dict[str, StoredFile] = Field(
        default_factory=dict,
        description="Files of the artifact by name; filled in by the store when it publishes.",
    )
    published_at: datetime | None = Field(default=None, description="When the store wrote the manifest (UTC); set by the store.")

    @property
    def artifact_id(self) -> str:
        return str(getattr(self, self.id_field))

    def content_fingerprint(self) -> str:
        """Hash of everything that makes this artifact what it is (not when it was published)."""
        skip = {"published_at", *self.volatile_fields}
        payload: dict[str, Any] = self.model_dump(mode="json", exclude=skip)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
