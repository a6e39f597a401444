"""The server's own settings (`PREFLOOP_SERVER_*`), on top of the shared ones."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from prefloop_core.contracts import GateMethod, GateRule
from prefloop_core.ids import SafeId
from prefloop_core.settings import Settings

_RULE = GateRule()  # the rule's defaults, which the settings repeat


class ServerSettings(Settings):
    server_host: str = Field(default="127.0.0.1", description="Address the router binds to.")
    server_port: int = Field(default=8090, ge=1, le=65535, description="The router's one stable port.")
    server_url: str = Field(
        default="http://127.0.0.1:8090", description="Where `deploy`, `promote`, `rollback`, `discard` find the router."
    )
    server_admin_token: SecretStr | None = Field(
        default=None, description="Token for the admin API (deploy, promote, rollback, discard, gate); none: admin refused."
    )
    server_initial_release: SafeId | None = Field(
        default=None,
        description="Release served at start while the history has none live yet (a new bucket); compose "
        "sets the base model's release, which its exporter makes at `up`. After the first promotion the history decides.",
    )
    server_models_dir: Path | None = Field(
        default=None, description="Where fetched releases are kept (default: `$PREFLOOP_HOME/server/models`)."
    )
    server_ctx: int = Field(default=4096, ge=256, description="llama-server `-c`: context size of each slot.")
    server_parallel: int = Field(default=4, ge=1, description="llama-server `-np`: requests a slot serves at once.")
    server_gpu_layers: int = Field(default=0, ge=0, description="llama-server `-ngl`: layers on the GPU (999: all).")
    server_threads: int | None = Field(default=None, ge=1, description="llama-server `-t` (default: llama.cpp's choice).")
    server_extra_args: str = Field(default="", description="More llama-server arguments, passed through as written.")
    server_health_timeout_s: float = Field(default=180, gt=0, description="How long a slot may take to load.")
    server_drain_timeout_s: float = Field(
        default=60, gt=0, description="How long a slot being replaced may finish its in-flight requests."
    )
    server_log_prompts: bool = Field(default=False, description="Log prompts and answers passing the router.")
    qa_api_key: SecretStr | None = Field(
        default=None,
        description="Key `prefloop qa --endpoint` sends (Authorization: Bearer), for an endpoint that wants one; none: no key.",
    )
    server_slot_api_key: SecretStr | None = Field(
        default=None,
        description="Key every slot's llama-server requires. Unset (the default): each slot starts with a "
        "fresh random key only the router holds, so another local process reaching a slot's port is refused (401). "
        "Set it only to measure a slot directly (the benchmarks do), and keep it out of logs like a token.",
    )
    server_max_body_mb: float = Field(default=4, gt=0, description="Largest request body the router accepts (MB).")
    server_qa_concurrency: int = Field(default=4, ge=1, description="QA requests in flight at once.")
    server_qa_max_tokens: int = Field(default=256, ge=1, description="Longest answer the QA runner asks for (tokens).")
    server_gate_concurrency: int = Field(
        default=1,
        ge=1,
        description="QA requests in flight on each slot during the gate (live first, then the "
        "candidate); 1 keeps the comparison deterministic: batched decoding changes answers between identical runs.",
    )
    server_gate_drift_tokens: int = Field(
        default=32,
        ge=0,
        description="QA gate: the drift figure (mean per-token KL between live and candidate) compares "
        "this many tokens of each of the live model's answers; 0 leaves it out (it costs about one more pass of the QA "
        "set on each slot, with the answers given).",
    )
    server_gate_method: GateMethod = Field(
        default=GateMethod.MCNEMAR,
        description="QA gate rule: `mcnemar` (an exact test on the questions that changed, "
        "held-out non-inferiority, protected questions) or `count` (a margin and a largest number of regressions).",
    )
    server_gate_alpha: float = Field(
        default=_RULE.alpha,
        gt=0,
        lt=1,
        description="QA gate (mcnemar): the candidate must be better beyond chance at this significance.",
    )
    server_gate_heldout_alpha: float = Field(
        default=_RULE.heldout_alpha,
        gt=0,
        lt=1,
        description="QA gate (mcnemar): refused when the held-out questions are worse beyond chance at this significance.",
    )
    server_gate_max_heldout_drop: float = Field(
        default=_RULE.max_heldout_drop,
        ge=0,
        le=1,
        description="QA gate (mcnemar): largest drop of held-out accuracy accepted (0.10: 10 points).",
    )
    server_gate_min_delta: float = Field(
        default=_RULE.min_delta, description="QA gate (count): candidate accuracy must be >= live + this."
    )
    server_gate_max_regressions: int = Field(
        default=_RULE.max_regressions, ge=0, description="QA gate (count): most live-correct questions that may regress."
    )
    server_correct_at: float = Field(default=0.7, ge=0, le=1, description="A QA score at or above this counts as correct.")
    server_ensemble_embeddings_url: str | None = Field(
        default=None,
        description="Consensus of an ensemble by embedding similarity: this OpenAI-compatible server's /v1/embeddings "
        "(base URL, without /v1) embeds the members' answers; unset, consensus uses key-fact similarity.",
    )
    server_ensemble_embeddings_model: str = Field(default="default", description="The embedding model's name.")
    server_ensemble_judge_url: str | None = Field(
        default=None,
        description="An ensemble with the `judge` rule asks this OpenAI-compatible server (base URL, without /v1) which "
        "member's answer is best; unset, such an ensemble is refused at deploy.",
    )
    server_ensemble_judge_model: str = Field(default="default", description="The judge's model name.")
    server_ensemble_judge_api_key: SecretStr | None = Field(default=None, description="The judge's API key, if it needs one.")

    def gate_rule(self, **changes: object) -> GateRule:
        """The QA gate's rule from these settings, with `changes` (e.g. from command-line flags) on top."""
        return GateRule.model_validate(
            {
                "method": self.server_gate_method,
                "correct_at": self.server_correct_at,
                "alpha": self.server_gate_alpha,
                "heldout_alpha": self.server_gate_heldout_alpha,
                "max_heldout_drop": self.server_gate_max_heldout_drop,
                "min_delta": self.server_gate_min_delta,
                "max_regressions": self.server_gate_max_regressions,
                **{k: v for k, v in changes.items() if v is not None},
            }
        )

    @property
    def models_dir(self) -> Path:
        return self.server_models_dir or self.home / "server" / "models"
