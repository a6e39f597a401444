"""The collector's own settings (`PREFLOOP_COLLECTOR_*`), on top of the shared ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from prefloop_core.ids import check_slug
from prefloop_core.settings import Settings

CHECK_NAMES = ("min_pairs", "duplicate_questions", "chosen_vs_rejected", "answer_length", "game_balance")


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class CollectorSettings(Settings):
    collector_db: Path | None = Field(
        default=None, description="SQLite review queue (default: `$PREFLOOP_HOME/collector/queue.db`)."
    )
    collector_host: str = Field(default="127.0.0.1", description="Address the collector's API and review UI bind to.")
    collector_port: int = Field(default=8700, ge=1, le=65535, description="Port of the API and review UI.")
    collector_threshold: float = Field(
        default=0.70, ge=0, le=1, description="`collect` queues answers with accuracy at or under this."
    )
    collector_window_days: int = Field(default=7, ge=1, description="`collect` reads answers from the last N days.")
    collector_target_pairs: int = Field(default=500, ge=1, description="Pairs to aim for (progress in `status`).")
    collector_min_pairs: int = Field(default=10, ge=1, description="Fewer trainable pairs than this fails `min_pairs`.")
    collector_warn_pairs: int = Field(default=50, ge=1, description="Fewer pairs than this warns in `min_pairs`.")
    collector_games: Annotated[list[str], NoDecode] = Field(
        default=["minecraft", "palworld", "overwatch"],
        description="Main games, comma-separated; `game_balance` wants each at `MIN_GAME_SHARE` or more.",
    )
    collector_min_game_share: float = Field(default=0.30, ge=0, le=1, description="Least share of pairs per main game.")
    collector_hard_checks: Annotated[list[str], NoDecode] = Field(
        default=["min_pairs", "duplicate_questions", "chosen_vs_rejected", "answer_length"],
        description="Checks whose failure blocks a snapshot (comma-separated); the others only warn. "
        f"Names: {', '.join(CHECK_NAMES)}.",
    )
    collector_max_text_chars: int = Field(
        default=20_000, ge=100, description="Longest question, context or answer accepted (characters)."
    )
    collector_max_body_mb: float = Field(default=16, gt=0, description="Largest request body the API accepts (MB).")
    collector_reviewers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='Reviewers and their tokens as JSON, e.g. `{"minji": "long-random-token"}`; '
        "each signs in to the review UI and the API with their token, and their name goes on every pair they write.",
    )

    collector_admin_token: SecretStr | None = Field(
        default=None,
        description="Token for the API's /api/admin calls (inviting and revoking contributors); unset, those calls are "
        "refused, and `prefloop contributors` on the collector's machine does the same without a token.",
    )
    collector_contributors_agree: int = Field(
        default=2,
        ge=1,
        description="Contributors who must give the same answer (compared normalised) before it becomes a pair without "
        "a reviewer; until then a reviewer can approve it in the review UI.",
    )
    collector_contributor_answers_per_hour: int = Field(
        default=60, ge=1, description="Answers one contributor may submit per hour; more are refused until it passes."
    )
    collector_contributor_max_chars: int = Field(
        default=2_000, ge=10, description="Longest answer a contributor may submit (characters)."
    )

    _split_games = field_validator("collector_games", "collector_hard_checks", mode="before")(_comma_list)

    @field_validator("collector_games")
    @classmethod
    def _games_are_names(cls, value: list[str]) -> list[str]:
        return [check_slug(game) for game in value]

    @field_validator("collector_hard_checks")
    @classmethod
    def _known_checks(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in CHECK_NAMES]
        if unknown:
            raise ValueError(f"unknown check {', '.join(unknown)}; known: {', '.join(CHECK_NAMES)}")
        return value

    @field_validator("collector_reviewers")
    @classmethod
    def _reviewer_names(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, token in value.items():
            check_slug(name)
            if len(token.get_secret_value()) < 16:
                raise ValueError(f"the token of reviewer {name!r} is shorter than 16 characters")
        return value

    @field_validator("collector_admin_token")
    @classmethod
    def _admin_token_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("the admin token is shorter than 16 characters")
        return value

    @property
    def db_path(self) -> Path:
        return self.collector_db or self.home / "collector" / "queue.db"
