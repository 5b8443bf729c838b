"""POST /feedback and GET /feedback/stats, against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect, select

from digit_api.feedback_store import RETRY_AFTER_SECONDS
from digit_release.feedback import database_url as to_url
from digit_release.feedback import feedback as table


@pytest.fixture
def served(make_client, shipped_model_dir: Path, database_url: str):
    """The service over the shipped model with a fresh feedback database of each kind."""
    return make_client(shipped_model_dir, database_url=database_url), database_url


@pytest.fixture(scope="module")
def misread(held_out_digits, shipped_model_dir: Path) -> tuple[list[int], int, int]:
    """A held-out digit the shipped model gets wrong: its pixels, its true label, the model's answer."""
    from digit_release.model import LiteRTModel

    images, labels = held_out_digits
    model = LiteRTModel.load(shipped_model_dir)
    predicted = model.predict(images.reshape(-1, 784)).argmax(axis=1)
    i = int(np.flatnonzero(predicted != labels)[0])
    return images[i].ravel().tolist(), int(labels[i]), int(predicted[i])


def rows(url: str) -> list[dict]:
    engine = create_engine(to_url(url))
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(select(table))]
    finally:
        engine.dispose()


def test_a_correction_is_stored_with_the_models_own_answer(served, misread) -> None:
    client, url = served
    pixels, label, predicted = misread
    response = client.post(
        "/feedback",
        json={"pixels": pixels, "label": label, "request_id": "req-42"},
        headers={"User-Agent": "Mozilla/5.0 (person-identifying)", "X-Forwarded-For": "203.0.113.7"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["stored"] is True
    assert (body["label"], body["prediction"], body["confirmed"]) == (label, predicted, False)
    assert body["model_version"] == "1" == response.headers["X-Model-Version"]
    assert body["heard"] == {"model_version": "1", "confirmed": 0, "corrected": 1, "accuracy": 0.0}

    [row] = rows(url)
    assert row["id"] == body["id"]
    assert np.frombuffer(row["pixels"], dtype=np.uint8).tolist() == pixels
    assert (row["label"], row["prediction"], row["model_version"], row["model_name"]) == (
        label,
        predicted,
        "1",
        "mnist-cnn",
    )
    assert len(row["probabilities"]) == 10
    assert int(np.argmax(row["probabilities"])) == predicted
    assert row["request_id"] == "req-42"
    assert row["created_at"] is not None
    # Nothing that identifies a person: no column for it, and nothing the client's headers said.
    stored_text = json.dumps({k: v for k, v in row.items() if k != "pixels"}, default=str)
    assert "203.0.113.7" not in stored_text and "Mozilla" not in stored_text
    engine = create_engine(to_url(url))
    columns = {c["name"] for c in inspect(engine).get_columns("feedback")}
    engine.dispose()
    assert columns == {
        "id",
        "created_at",
        "model_name",
        "model_version",
        "label",
        "prediction",
        "probabilities",
        "pixels",
        "request_id",
    }


def test_the_client_cannot_claim_the_prediction(served, misread) -> None:
    client, _ = served
    pixels, label, _ = misread
    response = client.post("/feedback", json={"pixels": pixels, "label": label, "prediction": label})
    assert response.status_code == 422
    assert "prediction" in response.json()["detail"]


def test_a_confirmation_and_the_same_drawing_twice(served, digit) -> None:
    client, url = served
    pixels, label = digit
    first = client.post("/feedback", json={"pixels": pixels, "label": label})
    again = client.post("/api/feedback", json={"pixels": pixels, "label": label})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["confirmed"] is True and first.json()["stored"] is True
    assert again.json()["stored"] is False and again.json()["id"] == first.json()["id"]
    # Floats that round to the same 8-bit drawing are the same drawing.
    as_floats = client.post("/feedback", json={"pixels": [min(p + 0.2, 255) for p in pixels], "label": label})
    assert as_floats.status_code == 200 and as_floats.json()["id"] == first.json()["id"]
    assert len(rows(url)) == 1
    # The same drawing with another label is another verdict (a reviewer sees both).
    other = client.post("/feedback", json={"pixels": pixels, "label": (label + 1) % 10})
    assert other.status_code == 201
    assert len(rows(url)) == 2
    assert again.json()["heard"] == {"model_version": "1", "confirmed": 1, "corrected": 0, "accuracy": 1.0}


def test_stats_per_model_version(served, digit, misread) -> None:
    client, _ = served
    assert client.get("/feedback/stats").json() == {"model_version": "1", "versions": []}
    right_pixels, right_label = digit
    wrong_pixels, wrong_label, wrong_answer = misread
    client.post("/feedback", json={"pixels": right_pixels, "label": right_label})
    client.post("/feedback", json={"pixels": wrong_pixels, "label": wrong_label})
    response = client.get("/api/feedback/stats")
    assert response.status_code == 200
    [version] = response.json()["versions"]
    assert version["model_version"] == "1"
    assert (version["confirmed"], version["corrected"], version["accuracy"]) == (1, 1, 0.5)
    assert version["labels"] == [str(i) for i in range(10)]
    matrix = np.array(version["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 2
    assert matrix[right_label, right_label] == 1
    assert matrix[wrong_label, wrong_answer] == 1


def test_counters_by_model_version_and_outcome(served, digit, misread) -> None:
    client, _ = served
    client.post("/feedback", json={"pixels": digit[0], "label": digit[1]})
    client.post("/feedback", json={"pixels": digit[0], "label": digit[1]})
    client.post("/feedback", json={"pixels": misread[0], "label": misread[1]})
    metrics = client.get("/metrics").text
    for outcome in ("confirmed", "corrected", "duplicate"):
        assert f'feedback_total{{model_version="1",outcome="{outcome}"}} 1.0' in metrics


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"pixels": [0] * 783 + [255], "label": 12}, 422, "label: Input should be less than or equal to 9"),
        ({"pixels": [0] * 783 + [255], "label": -1}, 422, "label: Input should be greater than or equal to 0"),
        ({"pixels": [0] * 783 + [255], "label": "7"}, 422, "label: Input should be a valid integer"),
        ({"pixels": [0] * 783 + [255], "label": True}, 422, "label: Input should be a valid integer"),
        ({"pixels": [0] * 783 + [255], "label": 7.5}, 422, "label: Input should be a valid integer"),
        ({"pixels": [0] * 783 + [255]}, 422, "label: Field required"),
        ({"pixels": [0] * 784, "label": 7}, 422, "the drawing is empty"),
        ({"pixels": [0] * 783, "label": 7}, 422, "pixels: List should have at least 784 items"),
        ({"pixels": [[0] * 28] * 28, "label": 7}, 422, "not nested lists"),
        ({"pixels": [0] * 783 + [256], "label": 7}, 422, "pixels[783]: Input should be less than or equal to 255"),
        ({"pixels": [0] * 783 + ["1"], "label": 7}, 422, "pixels[783]: Input should be a valid number"),
        ({"pixels": [0] * 783 + [255], "label": 7, "request_id": "no spaces"}, 422, "request_id"),
        ([0] * 784, 422, "Input should be an object"),
    ],
)
def test_bad_feedback_is_a_client_error_that_names_the_problem(
    client, body: object, status: int, says: str, tmp_path: Path
) -> None:
    response = client.post("/feedback", json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]


def test_bad_bodies_are_client_errors(client) -> None:
    assert client.post("/feedback", content=b"{", headers={"Content-Type": "application/json"}).status_code == 422
    assert client.post("/feedback", content=b"", headers={"Content-Type": "application/json"}).status_code == 422
    assert client.post("/feedback", content=b"label=7", headers={"Content-Type": "text/plain"}).status_code == 415
    nan = b'{"pixels": [' + b"0," * 783 + b'NaN], "label": 7}'
    assert client.post("/feedback", content=nan, headers={"Content-Type": "application/json"}).status_code == 422
    assert client.get("/feedback").status_code == 405


def test_an_unreachable_database_is_503_and_predictions_go_on(make_client, shipped_model_dir: Path, digit) -> None:
    """Port 1 on loopback refuses at once: the database is down, the model is not."""
    client = make_client(shipped_model_dir, database_url="postgresql://digit:s3cret-pw@127.0.0.1:1/feedback")
    assert client.get("/readyz").status_code == 200
    assert client.post("/predict", json={"pixels": digit[0]}).json()["prediction"] == digit[1]
    for response in (
        client.post("/feedback", json={"pixels": digit[0], "label": digit[1]}),
        client.get("/feedback/stats"),
    ):
        assert response.status_code == 503
        detail = response.json()["detail"]
        assert detail.startswith("feedback cannot be stored right now")
        assert "predictions are not affected" in detail
        assert "s3cret-pw" not in detail  # the password never leaves the service
        assert response.headers["Retry-After"] == "5"
    assert client.post("/predict", json={"pixels": digit[0]}).status_code == 200


def test_every_database_thread_busy_is_a_503_after_the_queue_wait(
    make_client, shipped_model_dir: Path, digit, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Four verdicts stuck on a hung database: the fifth waits its turn a bounded time, then hears why."""
    from digit_api.routes import feedback as feedback_routes

    monkeypatch.setattr(feedback_routes, "QUEUE_SECONDS", 0.3)
    client = make_client(shipped_model_dir, database_url=f"sqlite:///{tmp_path / 'f.sqlite3'}")
    limiter = client.app.state.feedback_limiter
    holders = [object() for _ in range(int(limiter.total_tokens))]
    for holder in holders:  # as if every database thread were waiting on the database
        client.portal.call(limiter.acquire_on_behalf_of_nowait, holder)
    try:
        response = client.post("/feedback", json={"pixels": digit[0], "label": digit[1]})
        assert response.status_code == 503
        assert "the database is slow to answer" in response.json()["detail"]
        assert response.headers["Retry-After"] == "5"
        assert client.post("/predict", json={"pixels": digit[0]}).status_code == 200
    finally:
        for holder in holders:
            client.portal.call(limiter.release_on_behalf_of, holder)
    assert client.post("/feedback", json={"pixels": digit[0], "label": digit[1]}).status_code == 201


def test_an_unwritable_sqlite_file_is_503(make_client, shipped_model_dir: Path, digit, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    client = make_client(shipped_model_dir, database_url=f"sqlite:///{blocker}/feedback.sqlite3")
    response = client.post("/feedback", json={"pixels": digit[0], "label": digit[1]})
    assert response.status_code == 503
    assert "feedback database" in response.json()["detail"]
    assert client.post("/predict", json={"pixels": digit[0]}).status_code == 200


def test_postgresql_going_down_and_coming_back_loses_nothing(
    make_client, shipped_model_dir: Path, postgres_server, digit, misread
) -> None:
    url = postgres_server.create_database("restart_check")
    client = make_client(shipped_model_dir, database_url=url)
    assert client.post("/feedback", json={"pixels": digit[0], "label": digit[1]}).status_code == 201
    postgres_server.stop()
    try:
        down = client.post("/feedback", json={"pixels": misread[0], "label": misread[1]})
        assert down.status_code == 503
        assert client.post("/predict", json={"pixels": digit[0]}).status_code == 200
    finally:
        postgres_server.start()
    import time

    time.sleep(RETRY_AFTER_SECONDS + 0.1)  # after a failure the store waits this long before it tries again
    back = client.post("/feedback", json={"pixels": misread[0], "label": misread[1]})
    assert back.status_code == 201, back.text
    assert back.json()["heard"] == {"model_version": "1", "confirmed": 1, "corrected": 1, "accuracy": 0.5}


def test_sqlite_feedback_survives_a_restart(make_client, shipped_model_dir: Path, digit, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kept' / 'feedback.sqlite3'}"
    first = make_client(shipped_model_dir, database_url=url)
    assert first.post("/feedback", json={"pixels": digit[0], "label": digit[1]}).status_code == 201
    first.__exit__(None, None, None)
    second = make_client(shipped_model_dir, database_url=url)
    [version] = second.get("/feedback/stats").json()["versions"]
    assert version["confirmed"] == 1


def test_feedback_waits_do_not_hold_predictions(make_client, shipped_model_dir: Path, digit) -> None:
    """A database that accepts connections and never answers: feedback requests hang (up to the
    connect timeout), and predictions made meanwhile are answered before any of them."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # accepted by the kernel, never read: the client waits for a greeting
    port = listener.getsockname()[1]
    try:
        client = make_client(shipped_model_dir, database_url=f"postgresql://digit:pw@127.0.0.1:{port}/feedback")
        finished: list[tuple[str, int]] = []

        def send_feedback() -> None:
            status = client.post("/feedback", json={"pixels": digit[0], "label": digit[1]}).status_code
            finished.append(("feedback", status))

        threads = [threading.Thread(target=send_feedback) for _ in range(6)]
        for thread in threads:
            thread.start()
        for _ in range(20):
            finished.append(("predict", client.post("/predict", json={"pixels": digit[0]}).status_code))
        for thread in threads:
            thread.join(timeout=30)
        kinds = [kind for kind, _ in finished]
        assert kinds[:20] == ["predict"] * 20, kinds
        assert all(status == 200 for kind, status in finished if kind == "predict")
        assert [status for kind, status in finished if kind == "feedback"] == [503] * 6
    finally:
        listener.close()


def test_a_typo_in_database_url_stops_the_start(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from digit_api.config import Settings

    with pytest.raises(ValidationError, match="DATABASE_URL is not a usable database URL"):
        Settings(database_url="not a url")
    with pytest.raises(ValidationError, match="only sqlite and postgresql"):
        Settings(database_url="mysql://u@h/db")
    assert Settings(database_url="postgres://u:p@h/db").database_url == "postgres://u:p@h/db"
