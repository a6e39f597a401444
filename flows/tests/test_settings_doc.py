"""The flows' settings are documented in docs/configuration.md (generated table, kept in sync)."""

from __future__ import annotations

from pathlib import Path

from prefloop_core.settings import settings_markdown
from prefloop_flows.settings import FlowsSettings

REPO = Path(__file__).resolve().parents[2]


def test_the_configuration_page_documents_every_flows_setting() -> None:
    assert settings_markdown(FlowsSettings) in (REPO / "docs" / "configuration.md").read_text(), "stale: run `make docs`"
