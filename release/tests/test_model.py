"""The shipped model, loaded the way the service loads it, and the loader's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from digit_release.manifest import MANIFEST_NAME, TFLITE_NAME, file_entry
from digit_release.model import LiteRTModel, ModelLoadError
from digit_testing.releases import metrics_from

REQUIRED_ACCURACY = 0.985


@pytest.fixture(scope="module")
def shipped(shipped_model_dir: Path) -> LiteRTModel:
    return LiteRTModel.load(shipped_model_dir)


def test_shipped_model_accuracy_recomputed_with_litert(shipped: LiteRTModel, held_out_digits) -> None:
    """At least 98.5% on the 2,000 held-out digits, and exactly what its manifest claims."""
    images, labels = held_out_digits
    predicted = shipped.predict(images.reshape(len(images), 784)).argmax(axis=1)
    correct = int((predicted == labels).sum())
    metrics = shipped.manifest.metrics
    assert len(labels) == metrics.eval_set.size == 2000
    assert correct / len(labels) >= REQUIRED_ACCURACY
    assert correct == metrics.correct
    assert correct / len(labels) == pytest.approx(metrics.accuracy)


def test_probabilities_do_not_depend_on_batch_size(shipped: LiteRTModel, held_out_digits) -> None:
    images = held_out_digits[0][:300].astype(np.float32)
    one_by_one = np.concatenate([shipped.predict(image[None]) for image in images[:5]])
    batched = shipped.predict(images)  # 300 > max_chunk: exercises the chunking too
    assert batched.shape == (300, 10)
    np.testing.assert_allclose(batched[:5], one_by_one, atol=1e-6)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)


def test_accepts_flat_and_image_shaped_input(shipped: LiteRTModel, held_out_digits) -> None:
    image = held_out_digits[0][0].astype(np.float32)
    np.testing.assert_array_equal(shipped.predict(image.reshape(1, 784)), shipped.predict(image.reshape(1, 28, 28, 1)))


def test_tampered_model_is_not_loaded(model_copy: Path) -> None:
    path = model_copy / TFLITE_NAME
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="does not match the manifest"):
        LiteRTModel.load(model_copy)


def test_garbage_with_matching_checksum_is_not_loaded(model_copy: Path) -> None:
    """A manifest that vouches for a file LiteRT cannot read still does not get it served."""
    (model_copy / TFLITE_NAME).write_bytes(b"not a flatbuffer at all")
    manifest = json.loads((model_copy / MANIFEST_NAME).read_text())
    manifest["files"][TFLITE_NAME] = file_entry(model_copy / TFLITE_NAME).model_dump()
    (model_copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="LiteRT cannot load it"):
        LiteRTModel.load(model_copy)


def test_model_whose_output_disagrees_with_manifest_is_not_loaded(model_copy: Path) -> None:
    manifest = json.loads((model_copy / MANIFEST_NAME).read_text())
    drop = "9"
    manifest["labels"].pop(drop)
    manifest["output"]["shape"] = [9]
    cut = [row[:9] for row in manifest["metrics"]["confusion_matrix"][:9]]
    names = list(manifest["labels"].values())
    manifest["metrics"] = metrics_from(cut, names, manifest["metrics"]["eval_set"]["id"]).model_dump(mode="json")
    (model_copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match=r"model output is float32\[10\], manifest says float32\[9\]"):
        LiteRTModel.load(model_copy)


def test_threads_predicting_at_once_get_the_same_answers(shipped: LiteRTModel, held_out_digits) -> None:
    """Each thread runs its own interpreter: concurrent batches neither collide nor block each other."""
    from concurrent.futures import ThreadPoolExecutor

    images = held_out_digits[0][:64].reshape(64, 784).astype(np.float32)
    expected = shipped.predict(images)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: shipped.predict(images[: n % 64 + 1]), range(200)))
    for n, result in enumerate(results):
        np.testing.assert_allclose(result, expected[: n % 64 + 1], atol=1e-6)
