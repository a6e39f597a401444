"""The collector's settings: documented in docs/configuration.md, validated with readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefloop_core.settings import SettingsError, load_settings, settings_markdown
from prefloop_collector.settings import CollectorSettings

REPO = Path(__file__).resolve().parents[3]


def test_the_configuration_page_documents_every_collector_setting() -> None:
    table = settings_markdown(CollectorSettings)
    assert table in (REPO / "docs" / "configuration.md").read_text()
    assert "| `PREFLOOP_COLLECTOR_REVIEWERS` | (none) |" in table  # not pydantic's sentinel


def test_bad_collector_settings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLOOP_COLLECTOR_HARD_CHECKS", "min_pairs,vibes")
    monkeypatch.setenv("PREFLOOP_COLLECTOR_REVIEWERS", '{"Min Ji": "short"}')
    with pytest.raises(SettingsError) as info:
        load_settings(CollectorSettings)
    text = str(info.value)
    assert "PREFLOOP_COLLECTOR_HARD_CHECKS: Value error, unknown check vibes" in text
    assert "PREFLOOP_COLLECTOR_REVIEWERS" in text and "not a valid name" in text


def test_games_accept_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLOOP_COLLECTOR_GAMES", "Minecraft, palworld")
    assert load_settings(CollectorSettings).collector_games == ["minecraft", "palworld"]
