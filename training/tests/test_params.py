"""Training parameters: the committed file is valid, and every bad value is named with a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from digit_training.__main__ import EXIT_BAD_INPUT, main
from digit_training.params import DEFAULT_PARAMS, ParamsError, load_params

VALID = "epochs: 2\nbatch_size: 32\nlearning_rate: 0.001\nseed: 1\n"


def test_committed_params_are_valid_and_know_all_ten_digits() -> None:
    params = load_params(DEFAULT_PARAMS)
    assert params.numbers == tuple(range(10))
    assert params.epochs >= 1 and params.augmentation.enabled


def test_numbers_default_to_all_ten_and_are_sorted(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(VALID)
    assert load_params(path).numbers == tuple(range(10))
    path.write_text(VALID + "numbers: [7, 1, 3]\n")
    assert load_params(path).numbers == (1, 3, 7)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (VALID + "numbers: [0, 1, 12]\n", r"numbers: Value error, unknown digit\(s\) \[12\]"),
        (VALID + "numbers: [1, 1, 2]\n", r"numbers: Value error, digits listed twice"),
        (VALID + "numbers: [4]\n", r"numbers: Value error, a classifier needs at least two digits"),
        (VALID.replace("epochs: 2", "epochs: -3"), r"epochs: Input should be greater than or equal to 1"),
        (VALID.replace("learning_rate: 0.001", "learning_rate: x"), r"learning_rate: Input should be a valid number"),
        (VALID.replace("seed: 1\n", ""), r"seed: Field required"),
        (VALID + "epoch: 3\n", r"epoch: Extra inputs are not permitted"),
        (VALID + "augmentation: {rotation_degrees: 90}\n", r"augmentation\.rotation_degrees: Input should be less"),
        ("- just\n- a list\n", r"expected a mapping"),
        ("epochs: [\n", r"not valid YAML"),
        (VALID + "fine_tune: {epochs: 3}\n", r"fine_tune\.base: Field required"),
        (VALID + "fine_tune: {base: ''}\n", r"fine_tune\.base: String should have at least 1 character"),
        (VALID + "fine_tune: {base: m, epochs: 0}\n", r"fine_tune\.epochs: Input should be greater than or equal to 1"),
        (VALID + "fine_tune: {base: m, learning_rate: 0}\n", r"fine_tune\.learning_rate: Input should be greater than 0"),
        (VALID + "fine_tune: {base: m, learning_rate: 2}\n", r"fine_tune\.learning_rate: Input should be less than or equal to 1"),
        (VALID + "fine_tune: {from: m}\n", r"fine_tune\.base: Field required; fine_tune\.from: Extra inputs are not permitted"),
        (VALID + "fine_tune: build/model\n", r"fine_tune: Input should be a valid dictionary"),
    ],
    ids=["unknown-digit", "duplicate", "one-digit", "negative-epochs", "not-a-number", "missing", "typo",
         "rotation", "list", "yaml", "fine-tune-no-base", "fine-tune-empty-base", "fine-tune-epochs",
         "fine-tune-rate-0", "fine-tune-rate-2", "fine-tune-typo", "fine-tune-not-a-mapping"],
)  # fmt: skip
def test_bad_params_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=message):
        load_params(path)


def test_cli_exits_non_zero_naming_a_bad_parameter(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(VALID + "numbers: [0, 10]\n")
    assert main(["--params", str(path), "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    assert "numbers: Value error, unknown digit(s) [10]" in caplog.text
    assert not (tmp_path / "out").exists()


def test_cli_exits_non_zero_naming_a_missing_params_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert main(["--params", str(tmp_path / "nope.yaml")]) == EXIT_BAD_INPUT
    assert "nope.yaml: params file not found" in caplog.text


def test_cli_rejects_a_negative_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version", "-1"])
    assert exit_info.value.code == 2
    assert "--version: must be at least 1, got -1" in capsys.readouterr().err


def test_feedback_sets_are_listed_and_left_out_of_the_manifest_when_none(tmp_path) -> None:
    from digit_training.params import load_params

    base = "epochs: 1\nbatch_size: 8\nlearning_rate: 0.01\nseed: 1\n"
    path = tmp_path / "params.yaml"
    path.write_text(base)
    assert "feedback" not in load_params(path).model_dump(mode="json")
    path.write_text(base + "feedback: [sets/a/feedback.npz, sets/b/feedback.npz]\n")
    params = load_params(path)
    assert params.feedback == ("sets/a/feedback.npz", "sets/b/feedback.npz")
    assert params.model_dump(mode="json")["feedback"] == ["sets/a/feedback.npz", "sets/b/feedback.npz"]


def test_fine_tune_defaults_and_is_left_out_of_the_manifest_when_absent(tmp_path: Path) -> None:
    from digit_training.params import FINE_TUNE_EPOCHS, FINE_TUNE_LEARNING_RATE

    path = tmp_path / "params.yaml"
    path.write_text(VALID)
    assert load_params(path).fine_tune is None
    assert "fine_tune" not in load_params(path).model_dump(mode="json")
    path.write_text(VALID + "fine_tune: {base: ../build/model}\n")
    dumped = load_params(path).model_dump(mode="json")["fine_tune"]
    assert dumped == {"base": "../build/model", "epochs": FINE_TUNE_EPOCHS, "learning_rate": FINE_TUNE_LEARNING_RATE}


def test_cli_exits_non_zero_naming_a_bad_fine_tune_value(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(VALID + "fine_tune: {base: build/model, epochs: 0}\n")
    assert main(["--params", str(path), "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    assert "fine_tune.epochs: Input should be greater than or equal to 1" in caplog.text
    assert not (tmp_path / "out").exists()
