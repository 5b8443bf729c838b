"""People's corrections as training data: export them for review, read the reviewed sets back.

    digit-feedback export --since 2026-11-01 --out build/feedback/2026-11
    digit-feedback export --since 2026-11-01 --out build/feedback/2026-11 \\
        --exclude training/feedback-rejected.txt          # after a reviewer has looked at review.png

`export` reads the feedback store (DATABASE_URL, as the API does: a SQLite file by default) and
writes three files into --out:

- `feedback.npz`: the verdicts given since --since (up to --until), in the Keras mnist.npz layout
  (uint8 `x_train`, `y_train`, `x_test`, `y_test`, the label being the digit people gave), plus
  `id_train`, `id_test`. A share of the set (--holdout, 20 %) is held out in `x_test`, chosen by a
  hash of each verdict's id: the same verdict is held out in every export that contains it, so a
  digit measured once is never trained on later.
- `feedback.provenance.json`: the set's id and sha256, the counts, the time range, the model
  versions that answered, the exclusions applied, where it came from (the URL without password).
- `review.png`: every digit, grouped by the label people gave, with the model's answer and the
  verdict's id under each one, so a reviewer spots mislabelled or hostile ones at a glance and
  lists their ids (one a line, `#` comments) in the file passed with --exclude.

Training adds such sets with `feedback:` in params.yaml or `--feedback PATH` (python -m
digit_training); the manifest then names each set by id and sha256.

Exit codes: 0 written; 2 bad arguments, an unreadable exclusion file, or no feedback to export;
1 the database could not be read.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import re
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np

from digit_release.manifest import sha256_file
from digit_training.data import DataError, Dataset, read_npz
from digit_training.provenance import REPO_ROOT

# Where `make run`'s API keeps verdicts when DATABASE_URL is not set.
DEFAULT_DATABASE_URL = f"sqlite:///{REPO_ROOT / 'var' / 'feedback.sqlite3'}"

logger = logging.getLogger("digit_training.feedback")

NPZ_NAME = "feedback.npz"
PROVENANCE_NAME = "feedback.provenance.json"
REVIEW_NAME = "review.png"
DEFAULT_HOLDOUT = 0.2
ID_PATTERN = re.compile(r"[0-9a-f]{16}")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class ExportError(ValueError):
    """The export cannot be made as asked; the message says why."""


# ---- the hold-out rule --------------------------------------------------------------------------


def held_out(feedback_id: str, share: float) -> bool:
    """Whether a verdict is held out: a hash of its id, so the choice is the same in every export."""
    digest = hashlib.sha256(f"holdout:{feedback_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


# ---- reading the store ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    id: str
    created_at: datetime
    model_version: str
    label: int
    prediction: int
    pixels: np.ndarray  # (28, 28) uint8


def utc(moment: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; the API writes them in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_verdicts(database_url: str, since: datetime, until: datetime | None) -> list[Verdict]:
    """Verdicts stored at or after `since` (and before `until`), oldest first."""
    from sqlalchemy import select  # noqa: PLC0415

    from digit_release.feedback import feedback, make_engine  # noqa: PLC0415

    query = select(feedback).where(feedback.c.created_at >= since).order_by(feedback.c.created_at, feedback.c.id)
    if until is not None:
        query = query.where(feedback.c.created_at < until)
    engine = make_engine(database_url, application_name="digit-export-feedback")
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    finally:
        engine.dispose()
    return [
        Verdict(
            id=row.id,
            created_at=utc(row.created_at),
            model_version=row.model_version,
            label=int(row.label),
            prediction=int(row.prediction),
            pixels=np.frombuffer(row.pixels, dtype=np.uint8).reshape(28, 28),
        )
        for row in rows
    ]


def read_exclusions(path: Path) -> set[str]:
    """Ids a reviewer rejected: one a line, `#` starts a comment, blank lines ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ExportError(f"{path}: cannot read the exclusion file: {exc.strerror or exc}") from None
    ids = set()
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not ID_PATTERN.fullmatch(text):
            raise ExportError(f"{path} line {number}: {text!r} is not a feedback id (16 hex digits, from review.png)")
        ids.add(text)
    return ids


# ---- writing the set ----------------------------------------------------------------------------


def split(verdicts: list[Verdict], share: float) -> tuple[list[Verdict], list[Verdict]]:
    train = [v for v in verdicts if not held_out(v.id, share)]
    test = [v for v in verdicts if held_out(v.id, share)]
    return train, test


def arrays(verdicts: list[Verdict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.stack([v.pixels for v in verdicts]) if verdicts else np.zeros((0, 28, 28), dtype=np.uint8)
    y = np.array([v.label for v in verdicts], dtype=np.uint8)
    ids = np.array([v.id for v in verdicts], dtype="<U16")
    return x.astype(np.uint8), y, ids


def write_npz(path: Path, train: list[Verdict], test: list[Verdict]) -> str:
    """np.savez's format, but with fixed member order and timestamps: the same verdicts, the same bytes."""
    x_train, y_train, id_train = arrays(train)
    x_test, y_test, id_test = arrays(test)
    members = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    members |= {"id_train": id_train, "id_test": id_test}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in members.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w") as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    return sha256_file(path)


def set_id(sha256: str) -> str:
    return f"feedback-{sha256[:12]}"


def export(
    database_url: str,
    out_dir: Path,
    since: datetime,
    *,
    until: datetime | None = None,
    exclude: Path | None = None,
    holdout: float = DEFAULT_HOLDOUT,
) -> dict[str, Any]:
    """Write feedback.npz, its provenance and the review sheet into `out_dir`; return the provenance."""
    from digit_release.feedback import redacted  # noqa: PLC0415

    if not 0 <= holdout < 1:
        raise ExportError(f"--holdout must be at least 0 and below 1, got {holdout}")
    excluded_ids = read_exclusions(exclude) if exclude else set()
    verdicts = read_verdicts(database_url, since, until)
    kept = [v for v in verdicts if v.id not in excluded_ids]
    if not kept:
        window = f"since {since.isoformat()}" + (f" until {until.isoformat()}" if until else "")
        raise ExportError(f"no feedback to export {window} ({len(verdicts)} found, {len(verdicts)} excluded)")
    train, test = split(kept, holdout)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sha256 = write_npz(out_dir / NPZ_NAME, train, test)
    contact_sheet(kept, out_dir / REVIEW_NAME, holdout)
    found = {v.id for v in verdicts}
    provenance = {
        "id": set_id(sha256),
        "file": NPZ_NAME,
        "sha256": sha256,
        "layout": "keras mnist.npz: uint8 x_train (N,28,28), y_train (N,), x_test, y_test; plus id_train, id_test",
        "created_at": datetime.now(UTC).isoformat(),
        "source": {
            "database": redacted(database_url),
            "since": since.isoformat(),
            "until": until.isoformat() if until else None,
        },
        "time_range": {"first": kept[0].created_at.isoformat(), "last": kept[-1].created_at.isoformat()},
        "counts": {
            "total": len(kept),
            "train": len(train),
            "holdout": len(test),
            "excluded": len(verdicts) - len(kept),
            "confirmed": sum(v.label == v.prediction for v in kept),
            "corrected": sum(v.label != v.prediction for v in kept),
            "per_label": {str(k): n for k, n in sorted(Counter(v.label for v in kept).items())},
        },
        "model_versions": dict(sorted(Counter(v.model_version for v in kept).items())),
        "holdout": {"share": holdout, "rule": "sha256('holdout:' + id), first 8 bytes / 2**64 < share"},
        "exclusions": {
            "file": str(exclude) if exclude else None,
            "sha256": sha256_file(exclude) if exclude else None,
            "ids": sorted(excluded_ids & found),
            "not_found": sorted(excluded_ids - found),
        },
        "review_sheet": REVIEW_NAME,
    }
    (out_dir / PROVENANCE_NAME).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return provenance


# ---- the review sheet -----------------------------------------------------------------------------

SCALE = 3
TILE_W, TILE_H = 112, 28 * SCALE + 30
PER_ROW = 12
MARGIN = 12
HEADER_H = 26
GOOD, BAD, MUTED = (20, 108, 46), (179, 38, 30), (90, 90, 90)


def contact_sheet(verdicts: list[Verdict], path: Path, holdout: float) -> None:
    """A PNG: one block per label people gave; each digit with its id and the model's answer.

    Dark ink on white, enlarged 3x. The model's answer is green when it agrees with the label and
    red when it does not; held-out digits are framed, so a reviewer knows which ones measure.
    """
    from PIL import Image, ImageDraw, ImageFont  # noqa: PLC0415

    groups: dict[int, list[Verdict]] = {}
    for verdict in verdicts:
        groups.setdefault(verdict.label, []).append(verdict)
    rows_per_group = {label: -(-len(items) // PER_ROW) for label, items in groups.items()}
    width = 2 * MARGIN + PER_ROW * TILE_W
    height = 2 * MARGIN + HEADER_H + sum(HEADER_H + rows * TILE_H for rows in rows_per_group.values())
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    title_font, font = ImageFont.load_default(size=16), ImageFont.load_default(size=11)
    draw.text(
        (MARGIN, MARGIN),
        f"{len(verdicts)} verdicts, grouped by the label people gave; under each: its id and the model's answer "
        f"(red: the model disagreed). Framed: held out ({holdout:.0%}).",
        fill="black",
        font=font,
    )
    y = MARGIN + HEADER_H
    for label in sorted(groups):
        items = groups[label]
        disagreed = sum(v.prediction != label for v in items)
        draw.text(
            (MARGIN, y + 4),
            f"label {label}: {len(items)} drawings, the model read {disagreed} otherwise",
            fill="black",
            font=title_font,
        )
        y += HEADER_H
        for i, verdict in enumerate(items):
            x0 = MARGIN + (i % PER_ROW) * TILE_W
            y0 = y + (i // PER_ROW) * TILE_H
            digit = Image.fromarray(255 - verdict.pixels).resize((28 * SCALE, 28 * SCALE), Image.Resampling.NEAREST)
            left = x0 + (TILE_W - 28 * SCALE) // 2
            sheet.paste(digit.convert("RGB"), (left, y0))
            frame = MUTED if held_out(verdict.id, holdout) else (220, 220, 220)
            draw.rectangle((left - 1, y0 - 1, left + 28 * SCALE, y0 + 28 * SCALE), outline=frame, width=1)
            draw.text((x0 + 4, y0 + 28 * SCALE + 2), verdict.id, fill=MUTED, font=font)
            colour = GOOD if verdict.prediction == label else BAD
            draw.text((x0 + 4, y0 + 28 * SCALE + 15), f"model: {verdict.prediction}", fill=colour, font=font)
        y += rows_per_group[label] * TILE_H
    sheet.save(path, optimize=True)


# ---- reading a set back for training --------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackSet:
    dataset: Dataset  # id "feedback-<sha12>", x_train / x_test as exported
    path: Path


def load_feedback_set(path: Path) -> FeedbackSet:
    """A feedback.npz in the Keras layout, checked against its provenance file when one lies beside it."""
    path = Path(path)
    dataset = read_npz(path)
    provenance = path.with_name(PROVENANCE_NAME)
    if path.name == NPZ_NAME and provenance.is_file():
        recorded = json.loads(provenance.read_text(encoding="utf-8")).get("sha256")
        if recorded != dataset.sha256:
            raise DataError(f"{path}: sha256 {dataset.sha256} differs from {provenance.name}'s {recorded}")
    return FeedbackSet(dataclasses.replace(dataset, id=set_id(dataset.sha256)), path)


# ---- command line ----------------------------------------------------------------------------------


def moment(text: str) -> datetime:
    """A date (midnight UTC) or an ISO date-time (UTC if no zone is given)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        return utc(datetime.fromisoformat(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (2026-11-01) or ISO date-time") from None


def share(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="digit-feedback",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    export_parser = sub.add_parser("export", help="write feedback since a date as a data set with a review sheet")
    export_parser.add_argument("--since", type=moment, required=True, help="first day (UTC) or date-time to export")
    export_parser.add_argument("--until", type=moment, help="export up to (not including) this day or date-time")
    export_parser.add_argument(
        "--out", type=Path, required=True, help="folder for feedback.npz, its provenance and review.png"
    )
    export_parser.add_argument("--exclude", type=Path, help="file of ids a reviewer rejected, one a line")
    export_parser.add_argument(
        "--holdout", type=share, default=DEFAULT_HOLDOUT, help="share held out by id hash (default %(default)s)"
    )
    export_parser.add_argument(
        "--database-url",
        help="the feedback store (default: DATABASE_URL, else the API's default SQLite file)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from digit_release.feedback import redacted, short  # noqa: PLC0415

    url = args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    try:
        provenance = export(url, args.out, args.since, until=args.until, exclude=args.exclude, holdout=args.holdout)
    except ExportError as exc:
        logger.error("%s", exc)
        return EXIT_BAD_INPUT
    except SQLAlchemyError as exc:
        logger.error("cannot read the feedback store %s: %s", redacted(url), short(exc))
        return EXIT_FAILED
    counts = provenance["counts"]
    print(
        f"{provenance['id']}: {counts['total']} verdicts ({counts['corrected']} corrections), "
        f"{counts['train']} to train on, {counts['holdout']} held out, {counts['excluded']} excluded; "
        f"review {args.out / REVIEW_NAME}",
        file=sys.stdout,
    )
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
