"""The RAG prompt: how a question (and its retrieved context) becomes chat messages.

The QA runner asks the served model with it and the collector builds training prompts with
it, so training sees exactly what serving sees. A custom template is a JSON file
(`PREFLOOP_PROMPT_TEMPLATE`) with the fields of `PromptTemplate`.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from prefloop_core.contracts import ChatMessage


class PromptTemplateError(ValueError):
    pass


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "default"
    system: str | None = Field(
        default=(
            "You are a game wiki assistant for Minecraft, Palworld and Overwatch. "
            "Answer briefly and correctly, in the language of the question. "
            "When a context is given, answer from it."
        ),
        description="System message, or null for none.",
    )
    with_context: str = Field(
        default="Context:\n{context}\n\nQuestion: {question}",
        description="User message when the question has a retrieved context; uses {context} and {question}.",
    )
    without_context: str = Field(default="{question}", description="User message without a context; uses {question}.")

    @field_validator("with_context", "without_context")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            value.format(question="q", context="c")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{question}} and {{context}} may appear in braces (write {{{{ for a brace): {exc}") from None
        if "{question}" not in value:
            raise ValueError("must contain {question}")
        return value

    def render(self, question: str, context: str | None = None) -> list[ChatMessage]:
        user = (
            self.with_context.format(question=question, context=context)
            if context
            else self.without_context.format(question=question)
        )
        messages = [ChatMessage(role="system", content=self.system)] if self.system else []
        return [*messages, ChatMessage(role="user", content=user)]


def load_template(path: Path | None) -> PromptTemplate:
    """The template in `path`, or the default one."""
    if path is None:
        return PromptTemplate()
    try:
        return PromptTemplate.model_validate(json.loads(path.read_text(encoding="utf-8-sig")))
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise PromptTemplateError(f"prompt template {path}: {exc}") from None
