"""Chat templates for base models: bundled by name or read from a file, and refused with what to give instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefloop_core.chat_templates import ChatTemplateError, bundled_names, resolve_chat_template
from prefloop_core.contracts import ChatTemplate


def test_bundled_templates_resolve_by_name_and_are_labelled_by_their_content() -> None:
    assert {"gemma", "chatml"} <= set(bundled_names())
    gemma = resolve_chat_template("gemma")
    assert gemma.name == "gemma" and "<start_of_turn>" in gemma.text and not gemma.text.endswith("\n")
    assert gemma.label() == f"gemma (sha256 {gemma.digest})" and len(gemma.digest) == 12
    assert ChatTemplate.model_validate_json(gemma.model_dump_json()) == gemma


def test_a_jinja_file_is_read_and_one_trailing_newline_dropped_as_jinja_does(tmp_path: Path) -> None:
    path = tmp_path / "mine.jinja"
    path.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}\n")
    template = resolve_chat_template(str(path))
    assert template == ChatTemplate(name=str(path), text="{% for m in messages %}{{ m['content'] }}{% endfor %}")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"'{path}' is neither a bundled one \(chatml, gemma.*\) nor a Jinja file that exists"),
        (b"", "is empty"),
        (b" \n\t", "is empty"),
        (b"\xff\xfe{{ x }}", r"not UTF-8 text \(byte 0\)"),
        (b"x" * (64 * 1024 + 1), "65537 bytes, more than a chat template needs"),
    ],
)
def test_a_template_that_cannot_be_used_is_refused_saying_what_to_give(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "given.jinja"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ChatTemplateError, match=message.format(path=path)):
        resolve_chat_template(str(path))
