"""The flows' settings are documented in the README (generated table, kept in sync)."""

from __future__ import annotations

from pathlib import Path

from prefloop_core.settings import settings_markdown
from prefloop_flows.settings import FlowsSettings

REPO = Path(__file__).resolve().parents[2]


def test_the_readme_documents_every_flows_setting() -> None:
    assert settings_markdown(FlowsSettings) in (REPO / "README.md").read_text()
