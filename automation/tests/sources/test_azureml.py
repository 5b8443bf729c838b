"""`azureml:MODEL_NAME` against a stand-in MLClient that keeps to the azure-ai-ml SDK v2 shapes.

The stand-in's `models.list(name=None, stage=None, *, list_view_type=...)` returns objects with
name/version (a string)/tags/properties/type like `azure.ai.ml.entities.Model`, and its
`models.download(name, version, download_path)` writes a registered folder where
`ModelOperations.download` does: `download_path/<name>/<registered folder's name>/...`.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from digit_poller.config import PollerConfig
from digit_poller.poller import Exit, poll
from digit_poller.sources import RELEASE_FILES, Release, SourceError, azureml
from digit_poller.sources.azureml import AzureMLSource
from digit_release.manifest import (
    MANIFEST_NAME,
    MODEL_NAME,
    SUMS_NAME,
    TFLITE_NAME,
    verify_model_dir,
)
from digit_testing.releases import IDENTITY, git, make_world, write_release

# --- the stand-in SDK -------------------------------------------------------------------------


class ResourceNotFoundError(Exception):
    """Shaped like azure.core.exceptions.ResourceNotFoundError (what ModelOperations.get raises)."""

    __module__ = "azure.core.exceptions"


class ClientAuthenticationError(Exception):
    """Shaped like azure.core.exceptions.ClientAuthenticationError (what DefaultAzureCredential raises)."""

    __module__ = "azure.core.exceptions"


@dataclass
class Model:
    """The fields of azure.ai.ml.entities.Model that a listing carries."""

    name: str
    version: str
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    type: str = "custom_model"
    path: str = ""


class ModelOperations:
    """`MLClient.models`: list and download, with the SDK's signatures."""

    def __init__(self) -> None:
        self.registered: dict[tuple[str, str], tuple[Model, Path]] = {}
        self.fail_with: Exception | None = None
        self.downloads: list[tuple[str, str]] = []

    def list(self, name: str | None = None, stage: str | None = None, *, list_view_type: str = "ActiveOnly"):
        if self.fail_with is not None:
            raise self.fail_with
        # Registration order, not version order: the source must sort.
        return iter([model for (model_name, _), (model, _) in self.registered.items() if name in (None, model_name)])

    def download(self, name: str, version: str, download_path: str | Path = ".") -> None:
        if self.fail_with is not None:
            raise self.fail_with
        assert isinstance(version, str), "the SDK takes the version as a string"
        if (name, version) not in self.registered:
            raise ResourceNotFoundError(f"Model container with name: {name} version: {version} not found.")
        self.downloads.append((name, version))
        _, folder = self.registered[(name, version)]
        # ModelOperations.download: download_path/<name>, and for a folder asset /<basename of its path>.
        shutil.copytree(folder, Path(download_path) / name / folder.name)


class StandInMLClient:
    def __init__(self) -> None:
        self.models = ModelOperations()

    def register(self, folder: Path, version: int | str, name: str = MODEL_NAME, **tags: str) -> None:
        """What `ml_client.models.create_or_update(Model(path=folder, name=..., version=..., tags=...))` records."""
        model = Model(name=name, version=str(version), tags=dict(tags), path=f"azureml://.../{folder.name}")
        self.models.registered[(name, str(version))] = (model, folder)


def make_release(root: Path, version: int, extra: dict[str, bytes] | None = None) -> Path:
    """A release folder as training/ publishes it: the shipped model under a new version."""
    root.mkdir(parents=True, exist_ok=True)
    folder = write_release(Path(tempfile.mkdtemp(prefix=f"v{version}-", dir=root)) / "release", version)
    for name, data in (extra or {}).items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def client() -> StandInMLClient:
    return StandInMLClient()


# --- the source ---------------------------------------------------------------------------------


def test_versions_are_ordered_by_number_not_by_text_or_registration(client, tmp_path: Path) -> None:
    for version in (2, 10, 3):
        client.register(make_release(tmp_path, version), version)
    client.register(make_release(tmp_path, 1), 1, name="another-model")
    releases = AzureMLSource(MODEL_NAME, client=client).releases()
    assert [r.version for r in releases] == [10, 3, 2]  # "10" > "3" numerically
    assert [r.tag for r in releases] == ["model-v10", "model-v3", "model-v2"]


def test_drafts_and_versions_that_are_not_numbers_are_skipped(client, tmp_path: Path) -> None:
    folder = make_release(tmp_path, 1)
    client.register(folder, 1)
    client.register(folder, 4, stage="draft")
    client.register(folder, 5, stage="Prerelease")
    client.register(folder, 3, stage="production")
    client.register(folder, "2024.1")
    client.register(folder, "0")
    assert [r.version for r in AzureMLSource(MODEL_NAME, client=client).releases()] == [3, 1]


def test_no_versions_is_no_releases(client) -> None:
    assert AzureMLSource(MODEL_NAME, client=client).releases() == []


def test_download_writes_exactly_the_release_files_and_they_verify(client, tmp_path: Path) -> None:
    folder = make_release(tmp_path / "registered", 7, extra={"MLmodel": b"flavors: {}\n", "notes.txt": b"hi\n"})
    client.register(folder, 7)
    source = AzureMLSource(MODEL_NAME, client=client)
    [release] = source.releases()
    dest = tmp_path / "dest"
    dest.mkdir()
    source.download(release, dest)
    assert client.models.downloads == [(MODEL_NAME, "7")]
    assert sorted(p.name for p in dest.iterdir()) == sorted([TFLITE_NAME, MANIFEST_NAME, SUMS_NAME])
    assert set(p.name for p in dest.iterdir()) <= set(RELEASE_FILES)
    assert verify_model_dir(dest).version == "7"


def test_a_flat_download_layout_works_too(client, tmp_path: Path) -> None:
    """A model registered from the files themselves lands in download_path/<name>/ directly."""
    folder = make_release(tmp_path / "registered", 2)

    def flat(name: str, version: str, download_path: str | Path = ".") -> None:
        shutil.copytree(folder, Path(download_path) / name)

    client.models.download = flat
    dest = tmp_path / "dest"
    dest.mkdir()
    AzureMLSource(MODEL_NAME, client=client).download(Release(2, "model-v2"), dest)
    assert verify_model_dir(dest).version == "2"


def test_a_download_without_a_manifest_is_refused(client, tmp_path: Path) -> None:
    folder = make_release(tmp_path / "registered", 2)
    (folder / MANIFEST_NAME).unlink()
    client.register(folder, 2)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(SourceError, match=r"holds no model\.json"):
        AzureMLSource(MODEL_NAME, client=client).download(Release(2, "model-v2"), dest)
    assert list(dest.iterdir()) == []


def test_an_oversize_file_is_refused(client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_release(tmp_path / "registered", 2)
    client.register(folder, 2)
    monkeypatch.setattr(azureml, "MAX_FILE_BYTES", (folder / TFLITE_NAME).stat().st_size - 1)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(SourceError, match=r"model\.tflite is \d+ bytes, larger than the \d+-byte cap"):
        AzureMLSource(MODEL_NAME, client=client).download(Release(2, "model-v2"), dest)
    assert not (dest / TFLITE_NAME).exists()


def test_azure_errors_become_source_errors(client, tmp_path: Path) -> None:
    source = AzureMLSource(MODEL_NAME, client=client)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(SourceError, match=r"version 9.*not found") as caught:
        source.download(Release(9, "model-v9"), dest)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    client.models.fail_with = ResourceNotFoundError("(UserError) The workspace was not found")
    with pytest.raises(SourceError, match=r"cannot list.*not found in the workspace"):
        source.releases()


def test_error_messages_carry_no_secrets(client) -> None:
    client.models.fail_with = ClientAuthenticationError(
        "Authentication failed for https://acct.blob.core.windows.net/models/m?sv=2021&sig=S3CRET%3D&se=2030\n"
        "  AccountKey=K3Y== client_secret=hunter2"
    )
    with pytest.raises(SourceError) as caught:
        AzureMLSource(MODEL_NAME, client=client).releases()
    message = str(caught.value)
    assert "sign-in failed" in message and "https://acct.blob.core.windows.net/models/m" in message
    for secret in ("S3CRET", "K3Y", "hunter2", "sv=2021"):
        assert secret not in message
    assert "\n" not in message


def test_other_errors_are_not_disguised(client) -> None:
    client.models.fail_with = ValueError("a bug, not an outage")
    with pytest.raises(ValueError, match="a bug"):
        AzureMLSource(MODEL_NAME, client=client).releases()


def sdk_installed() -> bool:
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("azure.ai.ml", "azure.identity"))
    except ModuleNotFoundError:  # find_spec imports the parent package: no `azure` at all
        return False


def test_without_a_client_the_workspace_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_ML_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000000")
    if not sdk_installed():
        with pytest.raises(ImportError):  # the CLI turns this into "install the optional extra"
            AzureMLSource(MODEL_NAME)
        return
    source = AzureMLSource(MODEL_NAME)
    with pytest.raises(SourceError, match="AZURE_RESOURCE_GROUP, AZURE_ML_WORKSPACE") as caught:
        source.releases()
    assert "AZURE_SUBSCRIPTION_ID" not in str(caught.value)


# --- through the poller, against real git -------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A bare remote holding the shipped model and the poller's clone of it (as in test_poller.py)."""
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MODEL_PUBLIC_KEY", raising=False)
    remote, clone = make_world(tmp_path)
    return {"remote": remote, "clone": clone, "tmp": tmp_path}


def remote_version(remote: Path) -> str:
    return json.loads(git(remote, "show", "main:api/models/model.json"))["version"]


def test_the_poller_installs_the_highest_registered_version(client, repo, caplog) -> None:
    registered = repo["tmp"] / "registered"
    client.register(make_release(registered, 2), 2)
    client.register(make_release(registered, 3), 3)
    client.register(make_release(registered, 4), 4, stage="draft")
    config = PollerConfig(model_source=f"azureml:{MODEL_NAME}", repo_path=repo["clone"], min_accuracy=0.985)
    source = AzureMLSource(MODEL_NAME, client=client)
    assert remote_version(repo["remote"]) == "1"

    assert poll(config, source) == Exit.OK
    assert remote_version(repo["remote"]) == "3"
    assert client.models.downloads == [(MODEL_NAME, "3")]
    subject = git(repo["remote"], "log", "-1", "--format=%B", "main")
    assert subject.startswith("model: v1 -> v3") and f"from azureml:{MODEL_NAME}" in subject
    assert git(repo["clone"], "status", "--porcelain") == ""

    assert poll(config, source) == Exit.OK  # nothing new: no second download
    assert client.models.downloads == [(MODEL_NAME, "3")]

    client.models.fail_with = ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")
    assert poll(config, source) == Exit.ERROR
    assert "sign-in failed" in caplog.text
    assert remote_version(repo["remote"]) == "3"


def test_an_sdk_call_that_never_returns_is_cut_off_at_the_deadline(client, tmp_path: Path) -> None:
    """The SDK's sockets are out of the poller's reach: each call runs against a wall clock instead."""
    import threading

    client.register(make_release(tmp_path / "r", 2), 2)
    hang = threading.Event()

    def download_hangs(name: str, version: str, download_path: str | Path = ".") -> None:
        hang.wait(60)  # a storage account that trickles, as far as the caller can tell

    source = AzureMLSource(MODEL_NAME, client=client, download_deadline=0.5, list_deadline=0.5)
    release = source.releases()[0]
    client.models.download = download_hangs
    dest = tmp_path / "download" / "dest"
    dest.mkdir(parents=True)
    with pytest.raises(SourceError, match=r"download: no answer within 0\.5 s"):
        source.download(release, dest)
    client.models.list = lambda **kwargs: hang.wait(60)
    with pytest.raises(SourceError, match="listing versions: no answer"):
        source.releases()
    hang.set()
    assert list(dest.iterdir()) == []
