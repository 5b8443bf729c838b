"""`azureml:MODEL_NAME`: the versions of a model registered in an Azure ML workspace (SDK v2).

Each registered version N of MODEL_NAME is release `model-vN` (Azure ML numbers versions 1, 2,
3, ... and returns them as strings; other version strings are ignored). Releases are ordered by N,
never by creation date. A version is not a release while it carries the tag `stage` with the value
`draft` or `prerelease` (any case; `pre-release` too), so a training run can register a model
and publish it later by changing the tag. Archived versions are left out by the SDK's own listing
(`ListViewType.ACTIVE_ONLY`, its default).

The registered model is a folder: what `training/` publishes (model.tflite, model.keras,
model.json, SHA256SUMS, optionally model.json.sig). `MLClient.models.download(name, version,
download_path)` writes it under `download_path/<name>/` and, for a folder asset, one level deeper
(`download_path/<name>/<folder name>/...`); the folder holding model.json is looked up rather than
assumed, so both layouts work. Only the files named in RELEASE_FILES are copied into the
poller's folder, each at most MAX_FILE_BYTES. (The SDK downloads the whole registered folder into
a temporary folder first: it offers no size limit of its own.)

The workspace comes from AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZURE_ML_WORKSPACE; the
identity from `DefaultAzureCredential` (the AZURE_CLIENT_ID/AZURE_TENANT_ID/... variables, a
managed identity, or `az login`). The SDK is an optional extra
(`pip install -r automation/requirements-azure.txt`): it is imported when the source is created,
so a missing SDK is an ImportError there, while a missing variable or any Azure error is a
SourceError when the source is used (the poller logs it and the next run tries again).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from digit_release import azure
from digit_release.manifest import tag_version

from . import MAX_FILE_BYTES, RELEASE_FILES, BadRelease, Release, SourceError, fingerprint, with_deadline

log = logging.getLogger(__name__)

STAGE_TAG = "stage"
UNPUBLISHED_STAGES = frozenset({"draft", "prerelease", "pre-release"})
MAX_MESSAGE = 400

# Query strings of URLs (SAS tokens live there) and key=value secrets that storage errors can quote.
_URL_QUERY = re.compile(r"(https?://[^\s?#'\"]+)\?[^\s'\"]*")
_SECRET = re.compile(r"(?i)\b(sig|accountkey|sharedaccesssignature|client_secret|password|token)=[^\s;&'\"]+")


def _is_azure_error(exc: BaseException) -> bool:
    """An exception of the Azure SDK (azure.core.exceptions.AzureError and its kin), without importing azure."""
    return any(cls.__module__.startswith("azure.") for cls in type(exc).__mro__)


def _describe(exc: BaseException) -> str:
    """What went wrong, on one line, without SAS tokens or other secrets that a URL may carry."""
    kinds = {cls.__name__ for cls in type(exc).__mro__}
    text = " ".join(str(exc).split())
    text = _URL_QUERY.sub(r"\1?<redacted>", text)
    text = _SECRET.sub(lambda m: f"{m.group(1)}=<redacted>", text)
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    if "ClientAuthenticationError" in kinds:
        hint = (
            "Azure sign-in failed (check AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET,"
            " the managed identity or `az login`)"
        )
    elif "ResourceNotFoundError" in kinds:
        hint = "not found in the workspace (check the model name and AZURE_ML_WORKSPACE)"
    else:
        hint = type(exc).__name__
    return f"{hint}: {text}" if text else hint


@contextmanager
def _azure_errors(action: str) -> Iterator[None]:
    """Turn an Azure SDK exception into a SourceError; anything else passes through unchanged."""
    try:
        yield
    except Exception as exc:
        if not _is_azure_error(exc):
            raise
        raise SourceError(f"{action}: {_describe(exc)}") from None  # no chained traceback quoting request details


class AzureMLSource:
    """`ReleaseSource` over `MLClient.models.list(name=...)` and `MLClient.models.download(...)`."""

    def __init__(
        self,
        model_name: str,
        client: object | None = None,
        list_deadline: float = 60.0,
        download_deadline: float = 600.0,
    ) -> None:
        if not model_name or model_name.strip() != model_name:
            raise ValueError(f"Azure ML model name must be a non-empty name, got {model_name!r}")
        self.model_name = model_name
        self.name = f"azureml:{model_name}"
        # The SDK's sockets are out of reach, so each call runs against a wall clock in a thread.
        self.list_deadline, self.download_deadline = list_deadline, download_deadline
        self._client: Any = client
        if client is None:
            # Imported here, not at module import: the SDK is an optional extra, and an ImportError
            # now (where the CLI reports it) beats one in the middle of a poll.
            from azure.ai.ml import MLClient  # noqa: PLC0415
            from azure.identity import DefaultAzureCredential  # noqa: PLC0415

            self._ml_client = MLClient
            self._credential = DefaultAzureCredential

    def _workspace_client(self) -> Any:
        """The given client, or the real MLClient built on first use from the environment."""
        if self._client is None:
            try:
                subscription, group, workspace = azure.workspace_from_env()
            except azure.AzureSetupError as exc:
                raise SourceError(f"{self.name}: {exc} to read models from") from None
            with _azure_errors(f"{self.name}: cannot connect to workspace {workspace}"):
                self._client = self._ml_client(
                    credential=self._credential(),
                    subscription_id=subscription,
                    resource_group_name=group,
                    workspace_name=workspace,
                    show_progress=False,  # cron logs, not a terminal
                )
        return self._client

    def releases(self) -> list[Release]:
        def listing() -> list[Any]:
            client = self._workspace_client()
            with _azure_errors(f"{self.name}: cannot list the model's versions"):
                return list(client.models.list(name=self.model_name))  # a lazy pager: read it inside the guard

        models = with_deadline(listing, self.list_deadline, f"{self.name}: listing versions")
        found: dict[int, Release] = {}
        for model in models:
            raw = str(getattr(model, "version", "") or "").strip()
            version = tag_version(f"model-v{raw}")
            if version is None:
                log.debug("%s: version %r is not a positive integer: not a release", self.name, raw)
                continue
            tags = getattr(model, "tags", None) or {}
            stage = str(tags.get(STAGE_TAG, "")).strip().lower()
            if stage in UNPUBLISHED_STAGES:
                log.debug("%s: version %s is tagged %s=%s: not published yet", self.name, raw, STAGE_TAG, stage)
                continue
            # A registered version's files never change, so the version and its creation identify them.
            created = getattr(getattr(model, "creation_context", None), "created_at", None)
            found[version] = Release(
                version=version, tag=f"model-v{version}", assets={}, fingerprint=fingerprint([raw, str(created)])
            )
        return sorted(found.values(), key=lambda release: release.version, reverse=True)

    def download(self, release: Release, dest: Path) -> None:
        dest = Path(dest)
        what = f"{self.name} version {release.version}"
        # The SDK writes into a folder of the state folder's download area, thrown away at every run,
        # so a call abandoned at the deadline writes nowhere that matters.
        with tempfile.TemporaryDirectory(prefix=".azureml-", dir=dest.parent, ignore_cleanup_errors=True) as tmp:

            def fetch() -> None:
                client = self._workspace_client()
                with _azure_errors(f"{what}: download failed"):
                    client.models.download(name=self.model_name, version=str(release.version), download_path=tmp)

            with_deadline(fetch, self.download_deadline, f"{what}: download")
            try:
                folder = azure.release_folder(Path(tmp))
            except azure.AzureSetupError as exc:
                raise SourceError(f"{what}: {exc}") from None
            for name in RELEASE_FILES:
                path = folder / name
                if path.is_symlink() or not path.is_file():
                    continue
                size = path.stat().st_size
                if size > MAX_FILE_BYTES:
                    raise BadRelease(f"{what}: {name} is {size} bytes, larger than the {MAX_FILE_BYTES}-byte cap")
                shutil.copyfile(path, dest / name)
