"""Exporting people's corrections for review, and reading the reviewed set back (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy.engine import make_url

from digit_api.feedback_store import FeedbackStore
from digit_release.feedback import to_uint8
from digit_release.model import LiteRTModel
from digit_testing.releases import SHIPPED, held_out
from digit_training import feedback
from digit_training.data import DataError, read_npz

NOV = datetime(2026, 11, 1, tzinfo=UTC)


def fill(url: str, count: int = 40, *, start: datetime = NOV, version: str = "1") -> list:
    """`count` held-out digits sent as verdicts, one an hour from `start`: every fourth one mislabelled
    as (label + 1) % 10, the rest confirmed; the model's answers are the shipped model's own."""
    images, labels = held_out()
    model = LiteRTModel.load(SHIPPED)
    store = FeedbackStore(url)
    stored = []
    for i in range(count):
        pixels = to_uint8(images[i].ravel())
        probabilities = model.predict(pixels.astype(np.float32)[None])[0]
        label = int(labels[i]) if i % 4 else (int(labels[i]) + 1) % 10
        result = store.add(
            pixels=pixels,
            label=label,
            prediction=int(probabilities.argmax()),
            probabilities=probabilities.tolist(),
            model_name="mnist-cnn",
            model_version=version,
            now=start + timedelta(hours=i),
        )
        stored.append((result.id, label, pixels))
    store.close()
    return stored


def test_export_writes_a_keras_layout_set_with_provenance_and_review_sheet(database_url: str, tmp_path: Path) -> None:
    stored = fill(database_url)
    out = tmp_path / "export"
    assert feedback.main(["export", "--since", "2026-11-01", "--out", str(out), "--database-url", database_url]) == 0

    data = read_npz(out / feedback.NPZ_NAME)  # the same loader as the bundled MNIST
    assert data.x_train.dtype == np.uint8 and data.x_train.shape[1:] == (28, 28)
    assert len(data.x_train) + len(data.x_test) == 40
    with np.load(out / feedback.NPZ_NAME) as npz:
        ids = {"train": npz["id_train"].tolist(), "test": npz["id_test"].tolist()}
    by_id = {i: (label, pixels) for i, label, pixels in stored}
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        for j, verdict_id in enumerate(ids[split]):
            label, pixels = by_id[verdict_id]
            assert int(y[j]) == label  # the label people gave, not the model's answer
            assert x[j].ravel().tolist() == pixels.tolist()
            assert feedback.held_out(verdict_id, 0.2) == (split == "test")
    assert 2 <= len(ids["test"]) <= 16  # about a fifth

    provenance = json.loads((out / feedback.PROVENANCE_NAME).read_text())
    assert provenance["sha256"] == data.sha256
    assert provenance["id"] == f"feedback-{data.sha256[:12]}"
    assert provenance["counts"]["total"] == 40
    assert provenance["counts"]["train"] == len(ids["train"]) and provenance["counts"]["holdout"] == len(ids["test"])
    assert provenance["counts"]["corrected"] >= 10  # the mislabelled quarter
    assert provenance["model_versions"] == {"1": 40}
    assert provenance["time_range"] == {
        "first": NOV.isoformat(),
        "last": (NOV + timedelta(hours=39)).isoformat(),
    }
    secret = make_url(database_url).password
    if secret:  # PostgreSQL: where it came from, never with the password
        assert secret not in json.dumps(provenance) and "***" in provenance["source"]["database"]

    sheet = Image.open(out / feedback.REVIEW_NAME)
    assert sheet.format == "PNG"
    groups = len({label for _, label, _ in stored})
    assert sheet.height >= groups * (feedback.HEADER_H + feedback.TILE_H)
    assert sheet.width == 2 * feedback.MARGIN + feedback.PER_ROW * feedback.TILE_W


def test_the_review_sheet_shows_each_digit_under_its_given_label(tmp_path: Path) -> None:
    """Rendered from two verdicts: the first group's first tile holds that digit's ink."""
    ink = np.zeros((28, 28), dtype=np.uint8)
    ink[4:24, 13:15] = 255  # a one
    verdicts = [
        feedback.Verdict("a" * 16, NOV, "1", 1, 1, ink),
        feedback.Verdict("b" * 16, NOV, "1", 7, 1, ink.T.copy()),
    ]
    path = tmp_path / "review.png"
    feedback.contact_sheet(verdicts, path, 0.2)
    sheet = np.asarray(Image.open(path).convert("L"))
    top = feedback.MARGIN + 2 * feedback.HEADER_H  # title line, then group "label 1"
    left = feedback.MARGIN + (feedback.TILE_W - 28 * feedback.SCALE) // 2
    tile = sheet[top : top + 28 * feedback.SCALE, left : left + 28 * feedback.SCALE]
    assert tile[4 * 3 : 24 * 3, 13 * 3 : 15 * 3].mean() < 10  # dark ink where the stroke of the one is
    assert tile[:, :30].mean() > 245  # paper elsewhere


def test_exports_are_reproducible_and_the_holdout_stable(database_url: str, tmp_path: Path) -> None:
    fill(database_url, 30)
    first = feedback.export(database_url, tmp_path / "a", NOV)
    again = feedback.export(database_url, tmp_path / "b", NOV)
    assert first["sha256"] == again["sha256"]  # same verdicts, same bytes
    later = feedback.export(database_url, tmp_path / "c", NOV + timedelta(hours=10))
    with np.load(tmp_path / "a" / feedback.NPZ_NAME) as a, np.load(tmp_path / "c" / feedback.NPZ_NAME) as c:
        # A verdict held out in one export is held out in every export that has it.
        assert set(c["id_test"].tolist()) <= set(a["id_test"].tolist())
        assert set(c["id_train"].tolist()) <= set(a["id_train"].tolist())
    assert later["counts"]["total"] == 20


def test_since_and_until_choose_the_window(database_url: str, tmp_path: Path) -> None:
    fill(database_url, 10)
    window = feedback.export(database_url, tmp_path / "w", NOV + timedelta(hours=3), until=NOV + timedelta(hours=7))
    assert window["counts"]["total"] == 4
    assert window["time_range"]["first"] == (NOV + timedelta(hours=3)).isoformat()


def test_rejected_ids_are_left_out(database_url: str, tmp_path: Path) -> None:
    stored = fill(database_url, 12)
    rejected = [stored[0][0], stored[4][0]]
    exclusions = tmp_path / "rejected.txt"
    exclusions.write_text(
        f"# mislabelled, says the reviewer\n{rejected[0]}\n\n{rejected[1]}  # a scribble\nffffffffffffffff\n"
    )
    out = tmp_path / "reviewed"
    argv = ["export", "--since", "2026-11-01", "--out", str(out), "--database-url", database_url]
    assert feedback.main([*argv, "--exclude", str(exclusions)]) == 0
    provenance = json.loads((out / feedback.PROVENANCE_NAME).read_text())
    assert provenance["counts"]["total"] == 10 and provenance["counts"]["excluded"] == 2
    assert provenance["exclusions"]["ids"] == sorted(rejected)
    assert provenance["exclusions"]["not_found"] == ["ffffffffffffffff"]
    with np.load(out / feedback.NPZ_NAME) as npz:
        assert not set(rejected) & set(npz["id_train"].tolist() + npz["id_test"].tolist())


def test_bad_requests_exit_2_and_say_why(database_url: str, tmp_path: Path, caplog) -> None:
    fill(database_url, 3)
    argv = ["export", "--out", str(tmp_path / "x"), "--database-url", database_url]
    assert feedback.main([*argv, "--since", "2027-01-01"]) == 2
    assert "no feedback to export since 2027-01-01" in caplog.text
    bad = tmp_path / "bad.txt"
    bad.write_text("not-an-id\n")
    assert feedback.main([*argv, "--since", "2026-11-01", "--exclude", str(bad)]) == 2
    assert "line 1: 'not-an-id' is not a feedback id" in caplog.text
    assert feedback.main([*argv, "--since", "2026-11-01", "--exclude", str(tmp_path / "missing.txt")]) == 2
    with pytest.raises(SystemExit):
        feedback.main([*argv, "--since", "last tuesday"])
    assert not (tmp_path / "x").exists()


def test_an_unreachable_database_exits_1(tmp_path: Path, caplog) -> None:
    url = "postgresql://digit:s3cret@127.0.0.1:1/feedback"
    assert feedback.main(["export", "--since", "2026-11-01", "--out", str(tmp_path), "--database-url", url]) == 1
    assert "cannot read the feedback store postgresql://digit:***@127.0.0.1:1/feedback" in caplog.text
    assert "s3cret" not in caplog.text


def test_a_set_that_does_not_match_its_provenance_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.sqlite3'}"
    fill(url, 5)
    feedback.export(url, tmp_path / "set", NOV)
    loaded = feedback.load_feedback_set(tmp_path / "set" / feedback.NPZ_NAME)
    assert loaded.dataset.id.startswith("feedback-")
    provenance = tmp_path / "set" / feedback.PROVENANCE_NAME
    provenance.write_text(provenance.read_text().replace(loaded.dataset.sha256, "0" * 64))
    with pytest.raises(DataError, match=r"differs from feedback\.provenance\.json"):
        feedback.load_feedback_set(tmp_path / "set" / feedback.NPZ_NAME)
