"""The flows' own settings (`PREFLOOP_FLOWS_*`), on top of the shared ones."""

from __future__ import annotations

import enum
from pathlib import Path

from pydantic import Field, SecretStr

from prefloop_core.contracts import ExportMode, Quantization
from prefloop_core.settings import Settings


class JobRunnerKind(str, enum.Enum):
    PROCESS = "process"  # local subprocesses from .venvs (the embedded default)
    DOCKER = "docker"  # one-shot containers through the Docker socket (compose on a GPU host)


class FlowsSettings(Settings):
    flows_job_runner: JobRunnerKind = Field(
        default=JobRunnerKind.PROCESS, description="How the trainer and exporter run: `process` or `docker`."
    )
    flows_collector_url: str = Field(default="http://127.0.0.1:8700", description="The collector's API.")
    flows_collector_token: SecretStr | None = Field(
        default=None, description="A reviewer token of the collector (one of `PREFLOOP_COLLECTOR_REVIEWERS`), for the flows."
    )
    flows_server_url: str = Field(default="http://127.0.0.1:8090", description="The server's router (admin API under /admin).")
    flows_server_token: SecretStr | None = Field(
        default=None, description="The server's admin token (`PREFLOOP_SERVER_ADMIN_TOKEN`)."
    )
    flows_qa_set: Path | None = Field(
        default=None, description="QA set (JSON) the flows ask and gate with (default: the bundled `games-v1`, 72 questions)."
    )
    flows_train_config: Path | None = Field(
        default=None, description="Trainer YAML for the `train` stage (default: the trainer's defaults)."
    )
    flows_train_from_live: bool = Field(
        default=True,
        description="Each new adapter continues the live release's (its training run, same base) and is "
        "pulled toward the live model (iterative DPO); false: every round trains from the base on all pairs (needed for the "
        "first run on a new base: the trainer refuses to continue a run of another base).",
    )
    flows_export_mode: ExportMode = Field(default=ExportMode.MERGED, description="`merged` or `adapter`.")
    flows_export_quant: Quantization = Field(default=Quantization.Q4_K_M, description="Quantization of the release.")
    flows_collect_cron: str = Field(default="0 3 * * *", description="When the `collect` deployment runs (cron, UTC).")
    flows_collect_threshold: float | None = Field(
        default=None, ge=0, le=1, description="Queue answers at or under this (default: the collector's threshold)."
    )
    flows_rehearsal_samples: int = Field(
        default=4,
        ge=0,
        le=16,
        description="`collect` samples this many answers to each train question the live model "
        "already answers right and queues the wrong ones, so that reviewed pairs also keep what it knows (0: off).",
    )
    flows_docker_image_prefix: str = Field(
        default="prefloop-", description="Job images are `<prefix><service>:<tag>` (prefloop-trainer, prefloop-exporter)."
    )
    flows_docker_image_tag: str = Field(default="latest", description="Tag of the job images.")
    flows_docker_network: str | None = Field(
        default=None, description="Docker network the job containers join (compose's, to reach MinIO)."
    )
    flows_docker_data_volume: str | None = Field(
        default=None, description="Named volume mounted at /data in job containers (HF cache, scratch)."
    )
    flows_docker_gpu: bool = Field(default=True, description="Request all GPUs for the trainer container.")
