"""The whole feedback loop, once on SQLite and once on a real PostgreSQL server.

People draw in real Chromium behind nginx and the real API and correct some answers; a reviewer
exports what was said since today, looks at the review sheet and rejects one hostile verdict; a
short training run takes the reviewed set; the new model's manifest names that set.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from digit_release.manifest import KERAS_NAME, TFLITE_NAME, verify_model_dir
from digit_testing.processes import running_api
from digit_testing.releases import SHIPPED

from .stack import nginx_binary, start_nginx, stop
from .strokes import DIGITS, draw, wait_for_digit

pytestmark = pytest.mark.slow


# Each digit the page knows how to draw, and what the person says it is: the 3 and the 7 are
# "corrected" to what someone insists on, the 4 is labelled 9 by a troll, the rest are confirmed.
GIVEN = {0: 0, 1: 1, 2: 2, 3: 8, 4: 9, 7: 1}


def give_verdicts(browser, url: str) -> dict[int, dict]:
    """Draw each digit in Chromium, wait for the answer, give the verdict; the API's answers by digit."""
    verdicts = {}
    context = browser.new_context(viewport={"width": 900, "height": 720}, reduced_motion="reduce")
    page = context.new_page()
    page.goto(url + "/")
    expect(page.locator("#model-version")).to_have_text("1")
    for digit, label in GIVEN.items():
        page.keyboard.press("Escape")  # a clean canvas for each drawing
        draw(page, DIGITS[digit])
        wait_for_digit(page, digit)
        page.wait_for_timeout(250)  # the answer to the lifted pen is the one on screen
        with page.expect_response("**/api/feedback") as answer:
            if label == digit:
                page.locator("#confirm").click()
            else:
                page.keyboard.press(str(label))
        assert answer.value.status == 201, answer.value.text()
        verdicts[digit] = answer.value.json()
        expect(page.locator("#thanks")).to_contain_text("Thanks!")
    expect(page.locator("#thanks")).to_contain_text("Model 1 has heard 6 verdicts: 3 confirmed, 3 corrected")
    context.close()
    return verdicts


def review(database_url: str, verdicts: dict[int, dict], tmp_path: Path) -> dict:
    """Export today's verdicts, rejecting the troll's; check what the reviewer gets. The provenance."""
    from digit_training.feedback import NPZ_NAME, PROVENANCE_NAME, REVIEW_NAME
    from digit_training.feedback import main as feedback_main

    rejected = tmp_path / "rejected.txt"
    rejected.write_text(f"{verdicts[4]['id']}  # a 4 labelled 9\n")
    out = tmp_path / "reviewed"
    today = datetime.now(UTC).date().isoformat()
    argv = ["export", "--since", today, "--out", str(out), "--exclude", str(rejected), "--database-url", database_url]
    assert feedback_main(argv) == 0
    provenance = json.loads((out / PROVENANCE_NAME).read_text())
    assert provenance["counts"]["total"] == 5 and provenance["counts"]["excluded"] == 1
    assert provenance["counts"]["corrected"] == 2
    assert provenance["model_versions"] == {"1": 5}
    assert Image.open(out / REVIEW_NAME).size[1] > 100  # the sheet a reviewer looks at
    with np.load(out / NPZ_NAME) as npz:
        labels = sorted(npz["y_train"].tolist() + npz["y_test"].tolist())
        ids = set(npz["id_train"].tolist() + npz["id_test"].tolist())
    assert labels == [0, 1, 1, 2, 8]  # what people said, the troll's 9 left out
    assert ids == {v["id"] for d, v in verdicts.items() if d != 4}
    return provenance


def test_corrections_drawn_in_the_browser_reach_the_next_model(browser, database_url: str, tmp_path: Path) -> None:
    from digit_training.__main__ import main as train

    with running_api(SHIPPED, tmp_path, {"DATABASE_URL": database_url}) as api:
        server, proxy = start_nginx(
            nginx_binary(), tmp_path / "nginx", api.url.removeprefix("http://"), feedback_rate_limit="10r/s"
        )
        try:
            verdicts = give_verdicts(browser, server.url)
        finally:
            stop(proxy)
    provenance = review(database_url, verdicts, tmp_path)

    # A short training run with the reviewed set, as params.yaml's feedback: list adds it.
    params = tmp_path / "params.yaml"
    params.write_text("epochs: 1\nbatch_size: 64\nlearning_rate: 0.002\nseed: 7\nfeedback: [reviewed/feedback.npz]\n")
    release = tmp_path / "release"
    argv = ["--params", str(params), "--out", str(release), "--max-train-samples", "600", "--no-report", "--quiet"]
    assert train(argv) == 0
    manifest = verify_model_dir(release, required=(TFLITE_NAME, KERAS_NAME))
    [used] = manifest.training.feedback
    assert (used.id, used.sha256) == (provenance["id"], provenance["sha256"])
    assert used.train_size + used.holdout_size == 5
    assert manifest.metrics.eval_set.size == 2000
    assert manifest.metrics.feedback.sets == [provenance["id"]]
