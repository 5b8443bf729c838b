"""The service's settings: one typed object read from the environment (docs/api.md, "Configuration")."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]

# Part of the API contract (documented in the OpenAPI schema), hence constants, not settings.
MAX_BATCH = 128
MAX_BODY_BYTES = 2 * 1024 * 1024  # nginx's client_max_body_size matches this
# The feedback store of `make run`: a SQLite file that needs no set-up and survives restarts.
DEFAULT_DATABASE = REPO_ROOT / "var" / "feedback.sqlite3"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    model_dir: Path = Path("api/models")
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    workers: int = Field(1, ge=1, le=64)
    # Seconds between checks of MODEL_DIR/model.json for a new model; 0 turns hot reload off.
    reload_interval: float = Field(2.0, ge=0)
    # LiteRT threads per request: one keeps latency flat when several requests run at once.
    num_threads: int = Field(1, ge=1, le=64)
    # POST /predict, /predict/batch and V2 infer skip FastAPI's routing and dependency injection
    # (serving.Shortcut) and answer the same bytes; off sends them through FastAPI like the rest.
    fast_path: bool = True
    # The drawing page the service serves itself in the embedded set-up (`make run`); none if absent.
    static_dir: Path = REPO_ROOT / "frontend" / "static"
    # Where people's corrections (POST /feedback) are stored: a SQLAlchemy URL, sqlite:///PATH or
    # postgresql://USER:PASSWORD@HOST/DB. Predictions never touch it.
    database_url: str = f"sqlite:///{DEFAULT_DATABASE}"
    # Bring the schema up to date at start (under a lock, so several replicas may race safely).
    # Off when a separate job with more privileges runs `python -m digit_api.feedback_store upgrade`.
    database_migrate: bool = True

    @field_validator("database_url")
    @classmethod
    def _usable_url(cls, url: str) -> str:
        # A typo is a deploy error worth stopping for; an unreachable database is not (503s only).
        from digit_release.feedback import check_url  # noqa: PLC0415 (keeps SQLAlchemy off this import)

        return check_url(url)


@lru_cache
def get_settings() -> Settings:
    return Settings()
