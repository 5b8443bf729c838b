"""The poller's settings: the environment variables of the README (its "release poller" section),
read once into one frozen object."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from digit_release import signing
from digit_release.manifest import SERVED_PATH

# Where the repository keeps the bundled data set (training/), relative to its root.
BUNDLED_DATA = "training/data/mnist.npz"


class PollerConfig(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    # github:OWNER/REPO, azureml:MODEL_NAME or dir:PATH
    model_source: str
    github_api_url: str = "https://api.github.com"
    github_token: SecretStr | None = None  # SecretStr: printing the config never shows it
    repo_path: Path
    git_remote: str = "origin"
    git_branch: str = "main"
    min_accuracy: float = Field(0.985, ge=0, le=1)
    # How much worse than the model in service a candidate may be (accuracy, 0..1) and still go in.
    accuracy_tolerance: float = Field(0.002, ge=0, le=1)
    model_public_key: str | None = None  # Ed25519 public key: PEM text, a PEM file, or raw base64
    push_attempts: int = Field(3, ge=1, le=10)
    # A candidate whose labels or input/output spec differ from the model in service is refused
    # unless this is true: clients of the API depend on them.
    allow_interface_change: bool = False
    # Who the poller commits as (git's own GIT_AUTHOR_*/GIT_COMMITTER_* variables still win), so
    # that a cron job on a host with no git configuration at all can commit.
    poller_git_name: str = Field("digit-poller", min_length=1)
    poller_git_email: str = Field("digit-poller@localhost", min_length=3)
    # Wall-clock limits, in seconds, on each network phase whatever the server does, and on each
    # socket operation within it.
    list_deadline: float = Field(60.0, gt=0)
    download_deadline: float = Field(600.0, gt=0)
    http_timeout: float = Field(10.0, gt=0)
    # Releases one run downloads and checks at most (a rejected one makes it try the next best).
    max_candidates: int = Field(3, ge=1, le=50)
    # The held-out digits every candidate is measured on (Keras mnist.npz layout): by default the
    # bundled set committed in the clone itself, checked against its provenance file.
    eval_data: Path | None = None

    @field_validator("github_token", mode="before")
    @classmethod
    def _clean_token(cls, value: object) -> object:
        # An env file saved with Windows line endings leaves "\r" on the token, and an HTTP header
        # cannot carry it: the outer white space goes, anything inside is refused (without the value).
        if isinstance(value, str):
            value = value.strip() or None
            if (value is not None and not value.isprintable()) or (value is not None and " " in value):
                raise ValueError("GITHUB_TOKEN holds white space or control characters (a pasted line break?)")
        return value

    @field_validator("model_public_key")
    @classmethod
    def _usable_key(cls, value: str | None) -> str | None:
        # A key that cannot be read is the configuration's fault (exit 1), not every release's.
        if value is not None:
            try:
                signing.load_public_key(value)
            except signing.SignatureError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("model_source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        kind, _, rest = value.partition(":")
        if kind not in ("github", "azureml", "dir") or not rest:
            raise ValueError(f"{value!r}: expected github:OWNER/REPO, azureml:MODEL_NAME or dir:PATH")
        if kind == "github" and rest.count("/") != 1:
            raise ValueError(f"{value!r}: expected github:OWNER/REPO")
        return value

    @property
    def model_dir(self) -> Path:
        return self.repo_path / SERVED_PATH

    @property
    def data_path(self) -> Path:
        return self.eval_data or self.repo_path / BUNDLED_DATA

    @property
    def state_dir(self) -> Path:
        """Inside .git: the poller's own state never shows up as a change in the clone."""
        return self.repo_path / ".git" / "digit-poller"
