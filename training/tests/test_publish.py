"""`python -m digit_training.publish` against the local GitHub Releases stand-in of automation/tests."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from digit_poller.sources.github import GitHubSource
from digit_release import signing
from digit_release.manifest import (
    KERAS_NAME,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    SUMS_NAME,
    TFLITE_NAME,
    file_entry,
    read_manifest,
    verify_model_dir,
    write_manifest,
)
from digit_testing import github_server as github_server_module
from digit_testing import releases as releases_module
from digit_testing.releases import SHIPPED, claiming
from digit_training.publish import main

TOKEN = "ghp_publishTestToken0123456789abcdefXYZ"  # noqa: S105 - a test token


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    with github_server_module.GitHubServer() as github:
        github.require_token = TOKEN
        monkeypatch.setenv("GITHUB_API_URL", github.api_url)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        yield github


def make_release_dir(folder: Path, **manifest_changes) -> Path:
    """A release folder as training writes one, without TensorFlow: the shipped model and a fake model.keras."""
    folder.mkdir(parents=True)
    shutil.copy(SHIPPED / TFLITE_NAME, folder / TFLITE_NAME)
    (folder / KERAS_NAME).write_bytes(b"PK\x03\x04 not really a keras zip")
    files = {name: file_entry(folder / name) for name in (KERAS_NAME, TFLITE_NAME)}
    manifest = read_manifest(SHIPPED).model_copy(update={"files": files, **manifest_changes})
    write_manifest(folder, manifest)
    verify_model_dir(folder, required=(TFLITE_NAME, KERAS_NAME))
    return folder


@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    return make_release_dir(tmp_path / "release")


def signing_key(tmp_path: Path) -> tuple[Path, bytes]:
    """A private key file for --signing-key, and its public half as PEM (one form MODEL_PUBLIC_KEY takes)."""
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "signing.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, public


def publish(server, release_dir: Path, *extra: str) -> int:
    return main([str(release_dir), "--repo", server.repo, *extra])


def download(server, tag: str, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for asset in server.release(tag)["assets"]:
        (dest / asset["name"]).write_bytes(server.asset_bytes(tag, asset["name"]))
    return dest


def test_first_publish_is_model_v1_with_every_asset_and_notes(server, release_dir: Path, tmp_path: Path) -> None:
    original = (release_dir / MANIFEST_NAME).read_bytes()
    assert publish(server, release_dir) == 0
    assert server.release_tags() == [("model-v1", False, False)]
    release = server.release("model-v1")
    assert {a["name"] for a in release["assets"]} == {TFLITE_NAME, KERAS_NAME, MANIFEST_NAME, SUMS_NAME}
    assert "| accuracy | 98.95% (1979/2000) |" in release["body"]
    assert "per-class accuracy" in release["body"] and "code revision" in release["body"]
    got = download(server, "model-v1", tmp_path / "got")
    assert verify_model_dir(got, required=(TFLITE_NAME, KERAS_NAME)).version == "1"
    assert (release_dir / MANIFEST_NAME).read_bytes() == original  # the input folder is left as it was
    # created as a draft, published by a PATCH after every upload
    methods = [(m, p.split("?")[0].rsplit("/", 1)[-1]) for m, p, _ in server.requests if m != "GET"]
    assert methods[0] == ("POST", "releases") and methods[-1][0] == "PATCH"
    assert [m for m, _ in methods].count("POST") == 5


def test_next_number_is_one_above_every_release_drafts_and_prereleases_included(
    server, release_dir: Path, tmp_path: Path
) -> None:
    assert publish(server, release_dir) == 0
    assert publish(server, release_dir) == 0
    server.add_release("model-v5", {}, prerelease=True)
    server.add_release("model-v3", {}, draft=True)  # created later, lower: numbering is by N, not date
    assert publish(server, release_dir) == 0
    assert [t for t, draft, pre in server.release_tags() if not draft and not pre] == [
        "model-v1",
        "model-v2",
        "model-v6",
    ]
    got = download(server, "model-v6", tmp_path / "got")
    assert read_manifest(got).version == "6"


def test_below_the_minimum_is_rejected_and_nothing_is_created(server, release_dir: Path, caplog) -> None:
    assert publish(server, release_dir, "--min-accuracy", "0.999") == 2
    assert server.release_tags() == []
    assert all(method == "GET" for method, _, _ in server.requests)
    assert "0.9895" in caplog.text and "0.9990" in caplog.text


def test_worse_than_the_model_in_service_is_rejected(server, release_dir: Path, tmp_path: Path, caplog) -> None:
    shipped = read_manifest(SHIPPED)
    better = make_release_dir(
        tmp_path / "better",
        version="4",
        metrics=claiming(shipped.metrics, correct=1990),  # 0.995
    )
    server.add_release("model-v4", {n: (better / n).read_bytes() for n in (MANIFEST_NAME, TFLITE_NAME)})
    assert publish(server, release_dir) == 2
    assert "0.9895" in caplog.text and "0.9950" in caplog.text and "model-v4" in caplog.text
    assert [t for t, _, _ in server.release_tags()] == ["model-v4"]
    # within the tolerance it goes through, as model-v5
    assert publish(server, release_dir, "--tolerance", "0.01") == 0
    assert server.release("model-v5")["draft"] is False


def test_dry_run_creates_nothing(server, release_dir: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    assert publish(server, release_dir, "--dry-run") == 0
    assert server.release_tags() == []
    assert "would publish model-v1" in caplog.text


def test_signing_key_adds_a_signature_the_poller_verifies(server, release_dir: Path, tmp_path: Path) -> None:
    pem, public_pem = signing_key(tmp_path)
    assert publish(server, release_dir, "--signing-key", str(pem)) == 0
    manifest = server.asset_bytes("model-v1", MANIFEST_NAME)
    signature = server.asset_bytes("model-v1", SIGNATURE_NAME).decode()
    signing.verify(manifest, signature, signing.load_public_key(public_pem.decode()))
    with pytest.raises(signing.SignatureError):
        signing.verify(manifest.replace(b'"1"', b'"2"'), signature, signing.load_public_key(public_pem.decode()))


def test_a_failed_upload_leaves_a_draft_the_poller_ignores(server, release_dir: Path, caplog) -> None:
    server.fail_upload(2)
    assert publish(server, release_dir) == 1
    assert server.release_tags() == [("model-v1", True, False)]
    assert "502" in caplog.text
    with GitHubSource(server.repo, api_url=server.api_url, token=TOKEN) as source:
        assert source.releases() == []
    # the next run takes the next number and publishes whole
    assert publish(server, release_dir) == 0
    with GitHubSource(server.repo, api_url=server.api_url, token=TOKEN) as source:
        assert [r.tag for r in source.releases()] == ["model-v2"]


def test_the_token_never_appears_in_logs(server, release_dir: Path, caplog, capsys, monkeypatch) -> None:
    caplog.set_level(logging.DEBUG)
    assert publish(server, release_dir, "--log-level", "DEBUG") == 0
    server.fail_upload(1)
    assert publish(server, release_dir, "--log-level", "DEBUG") == 1
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN + "-wrong")
    assert publish(server, release_dir, "--log-level", "DEBUG") == 1
    assert "401" in caplog.text
    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err):
        assert TOKEN not in text


def test_a_bad_release_folder_is_an_error(server, release_dir: Path) -> None:
    (release_dir / KERAS_NAME).write_bytes(b"changed")
    assert publish(server, release_dir) == 1
    assert server.requests == []


@pytest.fixture
def log_filters_restored() -> Iterator[None]:
    """The poller's logging puts its redacting filter on every root handler, pytest's capturing ones
    included; those handlers live for the whole session, and the filter folds each record's
    exc_info into its message, so later tests (api/tests' 500 test) would see no exc_info."""
    before = {handler: list(handler.filters) for handler in logging.getLogger().handlers}
    yield
    for handler, filters in before.items():
        handler.filters[:] = filters


def test_published_release_reaches_the_repository_through_the_poller(
    server, release_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_filters_restored: None
) -> None:
    from digit_poller.__main__ import main as poller_main

    for key, value in releases_module.IDENTITY.items():
        monkeypatch.setenv(key, value)
    remote, clone = releases_module.make_world(tmp_path / "world")
    pem, public = signing_key(tmp_path)
    server.add_release("model-v3", {}, draft=True)  # a failed earlier attempt: skipped in numbering and by the poller
    assert publish(server, release_dir, "--signing-key", str(pem)) == 0

    monkeypatch.setenv("MODEL_SOURCE", f"github:{server.repo}")
    monkeypatch.setenv("REPO_PATH", str(clone))
    monkeypatch.setenv("MIN_ACCURACY", "0.985")
    monkeypatch.setenv("MODEL_PUBLIC_KEY", public.decode())
    assert poller_main(["--once"]) == 0
    served = json.loads(releases_module.git(remote, "show", "main:api/models/model.json"))
    assert served["version"] == "4"
