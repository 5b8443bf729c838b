"""The release format: a manifest that does not describe its files exactly is refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from digit_release.manifest import (
    KERAS_NAME,
    MANIFEST_NAME,
    SUMS_NAME,
    TFLITE_NAME,
    ManifestError,
    file_entry,
    format_sha256sums,
    read_manifest,
    read_verified_file,
    verify_model_dir,
)


def edit_manifest(model_dir: Path, change) -> None:
    path = model_dir / MANIFEST_NAME
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_shipped_model_folder_verifies(model_copy: Path) -> None:
    manifest = verify_model_dir(model_copy)
    assert manifest.tag == f"model-v{manifest.version}"
    assert manifest.label_list() == [str(d) for d in range(10)]
    assert manifest.files[TFLITE_NAME] == file_entry(model_copy / TFLITE_NAME)


def test_flipped_byte_in_model_is_detected(model_copy: Path) -> None:
    path = model_copy / TFLITE_NAME
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"model\.tflite: sha256 [0-9a-f]{64} does not match"):
        verify_model_dir(model_copy)


def test_truncated_model_is_detected(model_copy: Path) -> None:
    path = model_copy / TFLITE_NAME
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ManifestError, match=r"model\.tflite: size \d+ bytes, manifest says \d+"):
        verify_model_dir(model_copy)


def test_missing_model_is_detected(model_copy: Path) -> None:
    (model_copy / TFLITE_NAME).unlink()
    with pytest.raises(ManifestError, match=r"model\.tflite: missing"):
        verify_model_dir(model_copy)


def test_missing_manifest_is_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no manifest"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("metrics"), r"metrics: Field required"),
        (lambda m: m.update(version="v3"), r"version: String should match pattern"),
        (lambda m: m.update(surprise=1), r"surprise: Extra inputs are not permitted"),
        (lambda m: m["labels"].pop("9"), r"labels must map every class index 0\.\.9"),
        (lambda m: m["files"]["model.tflite"].update(sha256="abc"), r"files\.model\.tflite\.sha256"),
        (lambda m: m["files"].update({"../evil": m["files"]["model.tflite"]}), r"not a plain file name"),
        (lambda m: m["metrics"].update(accuracy=1.5), r"metrics\.accuracy: Input should be less than or equal to 1"),
    ],
    ids=["no-metrics", "bad-version", "unknown-key", "labels-vs-output", "bad-sha", "path-escape", "accuracy>1"],
)
def test_invalid_manifest_is_refused_with_the_field_named(model_copy: Path, change, message: str) -> None:
    edit_manifest(model_copy, change)
    with pytest.raises(ManifestError, match=message):
        verify_model_dir(model_copy)


def test_not_json_is_refused(model_copy: Path) -> None:
    (model_copy / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ManifestError, match="not a valid manifest"):
        read_manifest(model_copy)


def test_sha256sums_is_checked_against_the_manifest(model_copy: Path) -> None:
    manifest = read_manifest(model_copy)
    entries = dict(manifest.files)
    entries[TFLITE_NAME] = entries[TFLITE_NAME].model_copy(update={"sha256": "0" * 64})
    (model_copy / SUMS_NAME).write_text(format_sha256sums(entries))
    with pytest.raises(ManifestError, match=r"SHA256SUMS disagrees with model\.json about model\.tflite"):
        verify_model_dir(model_copy)


def test_sha256sums_is_what_sha256sum_checks(model_copy: Path) -> None:
    """A user with only coreutils can check a downloaded release."""
    # The API's folder holds a subset of the release: model.keras is listed but not there.
    entries = {**read_manifest(model_copy).files, MANIFEST_NAME: file_entry(model_copy / MANIFEST_NAME)}
    (model_copy / SUMS_NAME).write_text(format_sha256sums(entries))
    result = subprocess.run(
        ["sha256sum", "--ignore-missing", "-c", SUMS_NAME], cwd=model_copy, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    verify_model_dir(model_copy)
    (model_copy / MANIFEST_NAME).write_text((model_copy / MANIFEST_NAME).read_text() + " ")
    with pytest.raises(ManifestError, match=r"model\.json: sha256 does not match SHA256SUMS"):
        verify_model_dir(model_copy)


def test_read_verified_file_gives_the_bytes_the_manifest_describes(model_copy: Path) -> None:
    manifest, content = read_verified_file(model_copy, TFLITE_NAME)
    assert content == (model_copy / TFLITE_NAME).read_bytes()
    assert manifest == read_manifest(model_copy)


def test_read_verified_file_refuses_a_changed_or_missing_file(model_copy: Path) -> None:
    path = model_copy / TFLITE_NAME
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"model\.tflite: sha256 [0-9a-f]{64} does not match"):
        read_verified_file(model_copy, TFLITE_NAME)
    # The API's folder lists model.keras (the release it came from) but does not hold it.
    with pytest.raises(ManifestError, match=r"model\.keras: missing"):
        read_verified_file(model_copy, KERAS_NAME)
