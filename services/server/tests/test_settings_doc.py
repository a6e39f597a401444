"""The server's settings are documented in docs/configuration.md (generated table, kept in sync)."""

from __future__ import annotations

from pathlib import Path

from prefloop_core.settings import settings_markdown
from prefloop_server.settings import ServerSettings

REPO = Path(__file__).resolve().parents[3]


def test_the_configuration_page_documents_every_server_setting() -> None:
    assert settings_markdown(ServerSettings) in (REPO / "docs" / "configuration.md").read_text(), "stale: run `make docs`"
