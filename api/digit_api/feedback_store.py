"""The feedback store: people's verdicts on the model's answers, in SQLite or PostgreSQL.

The table itself is the release package's (digit_release.feedback), shared with the training
component's export, which reads it; this module writes it, answers the statistics, and owns the
schema's migrations (Alembic), run at start under a lock. SQLAlchemy 2 Core and Alembic only: no
FastAPI here.

    python -m digit_api.feedback_store upgrade     # migrate DATABASE_URL's schema to the newest
    python -m digit_api.feedback_store current     # print its revision
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    Engine,
    case,
    func,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from digit_release.feedback import (
    STATEMENT_TIMEOUT_MS,
    feedback,
    feedback_id,
    make_engine,
    redacted,
    short,
)

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key of the schema migration: one replica migrates, the others wait.
MIGRATION_LOCK = 0x64696769  # "digi"
# After a failed attempt, requests within this many seconds fail at once instead of each waiting
# for a connect timeout on a database that is down.
RETRY_AFTER_SECONDS = 2.0


class FeedbackUnavailable(RuntimeError):
    """The database cannot be reached or used now; the message says why, without credentials."""


@dataclass(frozen=True)
class Heard:
    """What one model version has heard so far."""

    model_version: str
    confirmed: int
    corrected: int

    @property
    def accuracy(self) -> float | None:
        total = self.confirmed + self.corrected
        return self.confirmed / total if total else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "confirmed": self.confirmed,
            "corrected": self.corrected,
            "accuracy": self.accuracy,
        }


@dataclass
class VersionStats:
    heard: Heard
    labels: list[str]
    confusion_matrix: list[list[int]] = field(default_factory=list)


@dataclass(frozen=True)
class Stored:
    id: str
    stored: bool  # False: this drawing with this label was already there
    heard: Heard


class FeedbackStore:
    """The table behind POST /feedback, reached through one engine; thread-safe, blocking calls."""

    def __init__(self, url: str, migrate: bool = True) -> None:
        self.url = redacted(url)
        self.engine = make_engine(url, application_name="digit-api")
        self._migrate = migrate
        self._schema_ready = False
        self._lock = threading.Lock()
        # SQLite has one write lock per file, and its busy handler polls for it with sleeps of up to
        # 100 ms: under load one of the service's feedback threads could lose every round to the
        # others for the whole 5 s wait and answer 503 (4 verdicts of 43,000 in bench/soak.py). The
        # threads of this process queue here instead; the busy handler is left for other processes.
        self._sqlite_writer = threading.Lock() if self.backend == "sqlite" else None
        self._failed_at = float("-inf")
        self._failure = ""

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # ---- schema ----------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Migrate (or, with migration off, check) the schema once; FeedbackUnavailable while that fails."""
        if self._schema_ready:
            return
        with self._lock:
            if self._schema_ready:
                return
            if time.monotonic() - self._failed_at < RETRY_AFTER_SECONDS:
                raise FeedbackUnavailable(self._failure)
            try:
                database = sqlite_file(self.engine)
                if database is not None:
                    database.parent.mkdir(parents=True, exist_ok=True)  # make run needs no set-up
                if self._migrate:
                    upgrade(self.engine)
                else:
                    revision = current_revision(self.engine)
                    if revision != head_revision():
                        raise FeedbackUnavailable(
                            f"the schema is at revision {revision or 'none'}, not {head_revision()}: "
                            "run `python -m digit_api.feedback_store upgrade`"
                        )
            except (SQLAlchemyError, OSError) as exc:
                self._failed(f"the feedback database ({self.url}) is unavailable: {short(exc)}")
            except FeedbackUnavailable as exc:
                self._failed(str(exc))
            self._schema_ready = True

    def _failed(self, message: str) -> None:
        self._failed_at, self._failure = time.monotonic(), message
        logger.warning("%s", message)
        raise FeedbackUnavailable(message)

    @contextlib.contextmanager
    def _using(self) -> Iterator[None]:
        self.ensure_schema()
        try:
            yield
        except SQLAlchemyError as exc:
            message = f"the feedback database ({self.url}) is unavailable: {short(exc)}"
            logger.warning("%s", message)
            raise FeedbackUnavailable(message) from None

    # ---- writing and reading ----------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        if self._sqlite_writer is None:
            yield
            return
        wait = STATEMENT_TIMEOUT_MS / 1000
        if not self._sqlite_writer.acquire(timeout=wait):
            message = f"the feedback database ({self.url}) is busy: no turn to write within {wait:g} s"
            logger.warning("%s", message)
            raise FeedbackUnavailable(message)
        try:
            yield
        finally:
            self._sqlite_writer.release()

    def add(
        self,
        *,
        pixels: np.ndarray,
        label: int,
        prediction: int,
        probabilities: list[float],
        model_name: str,
        model_version: str,
        request_id: str | None = None,
        now: datetime | None = None,
    ) -> Stored:
        """Store one verdict unless the same drawing with the same label is there already."""
        row_id = feedback_id(label, pixels)
        row = {
            "id": row_id,
            "created_at": now or datetime.now(UTC),
            "model_name": model_name,
            "model_version": model_version,
            "label": label,
            "prediction": prediction,
            "probabilities": [float(p) for p in probabilities],
            "pixels": pixels.astype(np.uint8).tobytes(),
            "request_id": request_id,
        }
        with self._using(), self._writing(), self.engine.begin() as connection:
            # RETURNING says whether the row went in; rowcount is not reliable across drivers here.
            stored = connection.execute(insert_ignoring_duplicates(self.backend, row)).first() is not None
            heard = heard_by(connection, model_version)
        return Stored(row_id, stored, heard)

    def heard(self, model_version: str) -> Heard:
        with self._using(), self.engine.connect() as connection:
            return heard_by(connection, model_version)

    def stats(self, labels_of: dict[str, list[str]] | None = None) -> list[VersionStats]:
        """Per model version (newest first): counts, live accuracy and the confusion matrix.

        `labels_of` gives a version's labels (the model in service); for other versions the
        matrix spans the labels seen in their feedback.
        """
        query = select(
            feedback.c.model_version, feedback.c.label, feedback.c.prediction, func.count().label("n")
        ).group_by(feedback.c.model_version, feedback.c.label, feedback.c.prediction)
        with self._using(), self.engine.connect() as connection:
            rows = connection.execute(query).all()
        cells: dict[str, dict[tuple[int, int], int]] = {}
        for row in rows:
            version, label, prediction, n = str(row[0]), int(row[1]), int(row[2]), int(row[3])
            cells.setdefault(version, {})[(label, prediction)] = n
        result = []
        for version in sorted(cells, key=version_order, reverse=True):
            counts = cells[version]
            seen = {str(d) for pair in counts for d in pair}
            labels = (labels_of or {}).get(version) or sorted(seen, key=int)
            labels = labels + sorted(seen - set(labels), key=int)  # never drop a count
            index = {label: i for i, label in enumerate(labels)}
            matrix = [[0] * len(labels) for _ in labels]
            for (label, prediction), n in counts.items():
                matrix[index[str(label)]][index[str(prediction)]] += n
            confirmed = sum(n for (label, prediction), n in counts.items() if label == prediction)
            corrected = sum(counts.values()) - confirmed
            result.append(VersionStats(Heard(version, confirmed, corrected), labels, matrix))
        return result


def heard_by(connection: Any, model_version: str) -> Heard:
    confirmed = func.coalesce(func.sum(case((feedback.c.label == feedback.c.prediction, 1), else_=0)), 0)
    total, right = connection.execute(
        select(func.count(), confirmed).where(feedback.c.model_version == model_version)
    ).one()
    return Heard(model_version, int(right), int(total) - int(right))


def insert_ignoring_duplicates(backend: str, row: dict[str, Any]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, in the backend's dialect."""
    from sqlalchemy.dialects import postgresql, sqlite  # noqa: PLC0415

    dialect: Any = postgresql if backend == "postgresql" else sqlite
    return dialect.insert(feedback).values(**row).on_conflict_do_nothing(index_elements=["id"]).returning(feedback.c.id)


def sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite database; None for another backend or an in-memory one."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def version_order(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (-1, version)


# ---- migrations ----------------------------------------------------------------------------------


def alembic_config() -> Any:
    from alembic.config import Config  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextlib.contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    """SQLite: several worker processes of one machine take turns through a lock file beside the database."""
    database = sqlite_file(engine)
    if database is None:
        yield
        return
    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe when several replicas start at once."""
    from alembic import command  # noqa: PLC0415

    config = alembic_config()
    with _file_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Held to the end of this transaction: the others wait, then find the schema current.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def main(argv: list[str] | None = None) -> int:
    from digit_api.config import get_settings  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m digit_api.feedback_store", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("upgrade", "current"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url = get_settings().database_url
    engine = make_engine(url, application_name="digit-api")
    try:
        if args.action == "upgrade":
            upgrade(engine)
        print(f"{redacted(url)}: revision {current_revision(engine) or 'none'} (newest {head_revision()})")
    except SQLAlchemyError as exc:
        print(f"{redacted(url)}: {short(exc)}")
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
