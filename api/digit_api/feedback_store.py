"""The feedback store: people's verdicts on the model's answers, in SQLite or PostgreSQL.

One definition of the `feedback` table, shared by the API (which writes it) and the training
component's export (which reads it), like manifest.py is for model folders. SQLAlchemy 2 Core and
Alembic only: no FastAPI here.

A row holds the drawing as 784 bytes (MNIST's uint8 pixels, what training reads), the label the
person gave, the model's own prediction and probabilities on those bytes, the model's name and
version, the time and the prediction's request id when the page sent one. Nothing that identifies
a person: no address, no user agent, no cookie. The id is a hash of the label and the pixels, so
the same drawing sent twice with the same label is one row, whatever the database.

    python -m digit_api.feedback_store upgrade     # migrate DATABASE_URL's schema to the newest
    python -m digit_api.feedback_store current     # print its revision
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
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
    JSON,
    Column,
    DateTime,
    Engine,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    case,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
PIXELS = 784
ID_LENGTH = 16  # hex digits of sha256: 64 bits, no collision in any number of drawings people make
# pg_advisory_xact_lock key of the schema migration: one replica migrates, the others wait.
MIGRATION_LOCK = 0x64696769  # "digi"
# After a failed attempt, requests within this many seconds fail at once instead of each waiting
# for a connect timeout on a database that is down.
RETRY_AFTER_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 3
STATEMENT_TIMEOUT_MS = 5000

metadata = MetaData()
feedback = Table(
    "feedback",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True, comment="sha256 of label and pixels, first 16 hex digits"),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("model_name", String(128), nullable=False),
    Column("model_version", String(32), nullable=False, index=True),
    Column("label", SmallInteger, nullable=False, comment="the digit the person says it is"),
    Column("prediction", SmallInteger, nullable=False, comment="the model's answer on these pixels"),
    Column("probabilities", JSON, nullable=False, comment="the model's probabilities, one per label"),
    Column("pixels", LargeBinary(PIXELS), nullable=False, comment="784 uint8, row-major 28x28, 255 = ink"),
    Column("request_id", String(128), nullable=True, comment="X-Request-Id of the prediction, if sent"),
)


class FeedbackUnavailable(RuntimeError):
    """The database cannot be reached or used now; the message says why, without credentials."""


def check_url(url: str) -> str:
    """The URL if SQLAlchemy can use it (a driver is installed for it); ValueError naming the problem."""
    try:
        parsed = database_url(url)
        if parsed.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"only sqlite and postgresql are supported, got {parsed.get_backend_name()}")
        create_engine(parsed).dispose()  # loads the dialect and driver, connects to nothing
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise ValueError(f"DATABASE_URL is not a usable database URL: {exc}") from None
    return url


def database_url(url: str) -> URL:
    """`postgresql://` and `postgres://` (what managed databases hand out) use psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def redacted(url: str | URL) -> str:
    """The URL as it may appear in logs and provenance: never the password."""
    return (url if isinstance(url, URL) else make_url(url)).render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """An engine whose every wait is bounded, so a database that hangs cannot hold a request for long."""
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return create_engine(parsed, connect_args={"timeout": STATEMENT_TIMEOUT_MS / 1000})
    return create_engine(
        parsed,
        pool_pre_ping=True,  # a connection the server dropped (restart, failover) is replaced, not used
        pool_size=4,
        max_overflow=4,
        pool_timeout=CONNECT_TIMEOUT_SECONDS,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            "application_name": "digit-api",
        },
    )


def to_uint8(pixels: Any) -> np.ndarray:
    """784 contract pixels (0-255, ints or floats) as the uint8 bytes that are stored and trained on."""
    return np.rint(np.asarray(pixels, dtype=np.float64).reshape(PIXELS)).clip(0, 255).astype(np.uint8)


def feedback_id(label: int, pixels: np.ndarray) -> str:
    return hashlib.sha256(f"{label}:".encode() + pixels.tobytes()).hexdigest()[:ID_LENGTH]


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
        self.engine = make_engine(url)
        self._migrate = migrate
        self._schema_ready = False
        self._lock = threading.Lock()
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
                database = self.engine.url.database
                if self.backend == "sqlite" and database and database != ":memory:":
                    Path(database).parent.mkdir(parents=True, exist_ok=True)  # make run needs no set-up
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
        with self._using(), self.engine.begin() as connection:
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
        for version, label, prediction, n in rows:
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
    if backend == "postgresql":
        from sqlalchemy.dialects.postgresql import insert  # noqa: PLC0415
    else:
        from sqlalchemy.dialects.sqlite import insert  # noqa: PLC0415
    return insert(feedback).values(**row).on_conflict_do_nothing(index_elements=["id"]).returning(feedback.c.id)


def version_order(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (-1, version)


def short(exc: BaseException) -> str:
    """The driver's first line, without SQLAlchemy's SQL and background-link trailer."""
    original = getattr(exc, "orig", None) or exc
    return (str(original).strip().splitlines() or [type(original).__name__])[0]


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
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
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
    engine = make_engine(url)
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
