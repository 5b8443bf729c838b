"""Fine-tuning: a run that continues training a release folder, and the bases it refuses.

Tiny runs (600 digits, one epoch) like test_pipeline's smoke run: what is tested is the plumbing
(which model is loaded, what is checked first, what the manifest records), not the accuracy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from digit_release.manifest import (
    KERAS_NAME,
    MANIFEST_NAME,
    SUMS_NAME,
    TFLITE_NAME,
    file_entry,
    read_manifest,
    verify_model_dir,
    write_manifest,
)
from digit_release.model import LiteRTModel
from digit_testing.releases import SHIPPED, held_out
from digit_training.__main__ import EXIT_BAD_INPUT, EXIT_OK, main

from .test_pipeline import SMOKE_PARAMS, SMOKE_SAMPLES, smoke_run

pytestmark = pytest.mark.slow

# So small a rate that the fine-tuned model must answer as its base does: proof it started there.
TINY_RATE = "1e-9"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete release folder (model.keras, model.tflite, model.json, SHA256SUMS), model-v3."""
    return smoke_run(tmp_path_factory.mktemp("base"), "base", ("--version", "3"))


def fine_tune(tmp: Path, params_text: str, *extra: str) -> tuple[int, Path]:
    params = tmp / "params.yaml"
    params.write_text(params_text)
    out = tmp / "tuned"
    argv = ["--params", str(params), "--out", str(out), "--no-report", "--quiet", "--max-train-samples", SMOKE_SAMPLES]
    return main([*argv, *extra]), out


def with_keras(release: Path, target: Path, content: bytes) -> Path:
    """A copy of `release` whose model.keras is `content`, its manifest and SHA256SUMS made to agree."""
    shutil.copytree(release, target)
    (target / KERAS_NAME).write_bytes(content)
    manifest = read_manifest(target)
    files = {**manifest.files, KERAS_NAME: file_entry(target / KERAS_NAME)}
    write_manifest(target, manifest.model_copy(update={"files": files}))
    verify_model_dir(target, required=(KERAS_NAME,))
    return target


def test_a_fine_tune_starts_from_the_base_and_its_manifest_names_it(base: Path, tmp_path: Path) -> None:
    """params.yaml's fine_tune (base relative to the file): a verified release that names its base."""
    shutil.copytree(base, tmp_path / "releases" / "v3")
    # Another seed than the base's: a run from scratch with these params would be another model.
    text = SMOKE_PARAMS.replace("seed: 7", "seed: 8")
    text += f"fine_tune: {{base: releases/v3, epochs: 1, learning_rate: {TINY_RATE}}}\n"
    code, tuned = fine_tune(tmp_path, text, "--version", "4")
    assert code == EXIT_OK

    manifest = verify_model_dir(tuned, required=(TFLITE_NAME, KERAS_NAME))
    checked = subprocess.run(["sha256sum", "-c", SUMS_NAME], cwd=tuned, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout
    base_manifest = read_manifest(base)
    assert manifest.tag == "model-v4"
    assert manifest.training.fine_tuned_from is not None
    assert manifest.training.fine_tuned_from.model_dump() == {
        "name": base_manifest.name,
        "version": "3",
        "keras_sha256": base_manifest.files[KERAS_NAME].sha256,
    }
    assert manifest.training.params["fine_tune"] == {"base": "releases/v3", "epochs": 1, "learning_rate": 1e-9}
    assert manifest.metrics.eval_set.size == 2000  # the gate's digits, unchanged
    raw = json.loads((tuned / MANIFEST_NAME).read_text())
    assert raw["training"]["fine_tuned_from"]["version"] == "3"

    # At a rate of 1e-9 the weights barely move: the new model answers as the base does (a model
    # from scratch, or one trained one epoch on 600 digits, would not).
    images, _ = held_out()
    np.testing.assert_allclose(
        LiteRTModel.load(tuned).predict(images[:300]), LiteRTModel.load(base).predict(images[:300]), atol=1e-4
    )

    from digit_training.publish import release_notes

    expected = (
        f"| fine-tuned from | mnist-cnn model-v3 (model.keras sha256 `{base_manifest.files[KERAS_NAME].sha256[:12]}`) |"
    )
    assert expected in release_notes(manifest)


def test_the_flag_sets_the_base_and_the_default_schedule(base: Path, tmp_path: Path) -> None:
    """--fine-tune-from without a fine_tune section: the defaults, recorded in the manifest's params; same run, same model."""
    from digit_training.params import FINE_TUNE_EPOCHS, FINE_TUNE_LEARNING_RATE

    params = SMOKE_PARAMS.replace("epochs: 1", "epochs: 40")  # the schedule from scratch is not used
    first = tmp_path / "first"
    first.mkdir()
    code, tuned = fine_tune(first, params, "--fine-tune-from", str(base))
    assert code == EXIT_OK
    manifest = read_manifest(tuned)
    assert manifest.training.params["fine_tune"] == {
        "base": str(base),
        "epochs": FINE_TUNE_EPOCHS,
        "learning_rate": FINE_TUNE_LEARNING_RATE,
    }
    assert manifest.training.fine_tuned_from is not None and manifest.training.fine_tuned_from.version == "3"

    second = tmp_path / "second"
    second.mkdir()
    assert fine_tune(second, params, "--fine-tune-from", str(base))[0] == EXIT_OK
    images, _ = held_out()
    np.testing.assert_array_equal(
        LiteRTModel.load(tuned).predict(images[:200]), LiteRTModel.load(second / "tuned").predict(images[:200])
    )


def test_a_base_whose_model_keras_does_not_match_its_manifest_is_refused(
    base: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tampered = tmp_path / "tampered"
    shutil.copytree(base, tampered)
    data = bytearray((tampered / KERAS_NAME).read_bytes())
    data[len(data) // 2] ^= 0x01
    (tampered / KERAS_NAME).write_bytes(bytes(data))
    code, out = fine_tune(tmp_path, SMOKE_PARAMS, "--fine-tune-from", str(tampered))
    assert code == EXIT_BAD_INPUT
    assert f"fine_tune.base {tampered}: refused: model.keras: sha256" in caplog.text
    assert "does not match the manifest's" in caplog.text
    assert not out.exists()


def test_a_base_with_other_labels_is_refused(base: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    code, out = fine_tune(tmp_path, SMOKE_PARAMS + "numbers: [0, 1, 7]\n", "--fine-tune-from", str(base))
    assert code == EXIT_BAD_INPUT
    assert (
        "its labels ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] are not the digits being trained" in caplog.text
    )
    assert "['0', '1', '7']" in caplog.text
    assert not out.exists()


def test_a_model_keras_with_a_lambda_layer_is_refused_by_safe_mode(
    base: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Lambda layer carries marshalled Python code: safe mode refuses it instead of running it."""
    import keras

    inputs = keras.Input(shape=(28, 28, 1), name="pixels")
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x))
    lambda_path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(lambda_path)
    # The very file loads without safe mode: what refuses it below is safe mode, nothing else.
    assert keras.saving.load_model(lambda_path, safe_mode=False).output_shape == (None, 10)

    hostile = with_keras(base, tmp_path / "hostile", lambda_path.read_bytes())
    code, out = fine_tune(tmp_path, SMOKE_PARAMS, "--fine-tune-from", str(hostile))
    assert code == EXIT_BAD_INPUT
    assert f"fine_tune.base {hostile / KERAS_NAME}: Keras refuses to load it in safe mode" in caplog.text
    assert "Lambda" in caplog.text
    assert not out.exists()


def test_the_api_folder_is_not_a_base_and_the_message_says_where_one_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code, out = fine_tune(tmp_path, SMOKE_PARAMS, "--fine-tune-from", str(SHIPPED))
    assert code == EXIT_BAD_INPUT
    assert f"fine_tune.base {SHIPPED}: no model.keras" in caplog.text
    assert "build/model after `make train`" in caplog.text
    assert "api/models/ holds only model.tflite and model.json" in caplog.text
    assert not out.exists()


def test_a_missing_base_folder_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = SMOKE_PARAMS + "fine_tune: {base: nowhere}\n"
    code, _ = fine_tune(tmp_path, text)
    assert code == EXIT_BAD_INPUT
    assert f"fine_tune.base {tmp_path / 'nowhere'}: no such folder" in caplog.text


def test_a_fine_tune_does_not_replace_its_own_base(
    base: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """digit-train's default --out is build/model, the usual base: writing over it would lose the base."""
    before = {p.name: p.read_bytes() for p in base.iterdir()}
    params = tmp_path / "params.yaml"
    params.write_text(SMOKE_PARAMS)
    code = main(["--params", str(params), "--fine-tune-from", str(base), "--out", str(base), "--no-report", "--quiet"])
    assert code == EXIT_BAD_INPUT
    assert f"--out {base} is the fine-tune's base" in caplog.text
    assert {p.name: p.read_bytes() for p in base.iterdir()} == before
