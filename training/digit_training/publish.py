"""Publish a verified release folder as the GitHub release `model-v<N>`, behind an evaluation gate.

    digit-publish RELEASE_DIR --repo OWNER/REPO [--min-accuracy 0.985]
        [--tolerance 0.002] [--signing-key PATH] [--dry-run]

GITHUB_TOKEN (needs contents: write) and GITHUB_API_URL (default https://api.github.com) come from
the environment. N is one more than the highest `model-vN` on the repository, drafts and
pre-releases included, so numbers never collide; order is by N, never by date. The model must
reach --min-accuracy on the bundled held-out digits and be no worse than the model in service
(the highest published release) by more than --tolerance.

Exit codes: 0 published (or would be, with --dry-run), 1 error, 2 rejected by the gate.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from digit_release import github as api
from digit_release import signing
from digit_release.manifest import (
    KERAS_NAME,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    SUMS_NAME,
    TFLITE_NAME,
    EvaluationMetrics,
    ManifestError,
    ModelManifest,
    TrainingInfo,
    parse_manifest,
    tag_version,
    verify_model_dir,
    write_manifest,
)
from digit_release.model import ModelLoadError
from digit_training.evaluate import evaluate_model_dir

logger = logging.getLogger("digit_training.publish")

# Listing and downloading a manifest are small; an upload of the model may take a while.
REQUEST_DEADLINE = 300.0


class Exit:
    OK = 0
    ERROR = 1
    REJECTED = 2


class PublishError(RuntimeError):
    """The release could not be published (network, HTTP status, unexpected answer)."""


def next_version(releases: list[dict[str, Any]]) -> int:
    """1 + the highest N of any `model-vN` release, drafts and pre-releases included."""
    return 1 + max((v for r in releases if (v := tag_version(r.get("tag_name"))) is not None), default=0)


def in_service(releases: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The release the poller would serve: the highest N among published (not draft, not pre-release) ones."""
    published = [
        r
        for r in releases
        if r.get("draft") is False and r.get("prerelease") is False and tag_version(r.get("tag_name"))
    ]
    return max(published, key=lambda r: tag_version(r["tag_name"]) or 0, default=None)


def service_accuracy(github: api.GitHubClient, release: dict[str, Any]) -> float:
    asset = next((a for a in release.get("assets") or [] if a.get("name") == MANIFEST_NAME), None)
    if asset is None or not isinstance(asset.get("url"), str):
        raise PublishError(f"the release in service, {release['tag_name']}, has no {MANIFEST_NAME} asset")
    out = io.BytesIO()
    with github.deadline(REQUEST_DEADLINE, "reading the manifest in service") as d:
        github.download(asset["url"], out, MANIFEST_NAME, d, listed=asset.get("size"))
    raw = out.getvalue()
    try:
        return parse_manifest(raw).metrics.accuracy
    except ManifestError as exc:
        raise PublishError(f"{release['tag_name']}: {exc}") from None


def feedback_accuracy(m: EvaluationMetrics) -> str:
    if m.feedback is None or m.feedback.accuracy is None:
        return "none held out (trained without people's corrections)" if m.feedback is None else "none held out"
    return f"{m.feedback.accuracy:.2%} ({m.feedback.correct}/{m.feedback.size})"


def feedback_sets(t: TrainingInfo) -> str:
    if not t.feedback:
        return "none"
    return ", ".join(
        f"`{s.id}` (sha256 `{s.sha256[:12]}`, {s.train_size} trained on, {s.holdout_size} held out)" for s in t.feedback
    )


def fine_tuned_from(t: TrainingInfo) -> str:
    base = t.fine_tuned_from
    if base is None:
        return "none (trained from scratch)"
    return f"{base.name} model-v{base.version} (model.keras sha256 `{base.keras_sha256[:12]}`)"


def release_notes(manifest: ModelManifest) -> str:
    m, t = manifest.metrics, manifest.training
    runner = t.runner.kind + (f" (Azure ML job {t.runner.job_id})" if t.runner.job_id else "")
    rows = [
        ("accuracy", f"{m.accuracy:.2%} ({m.correct}/{m.eval_set.size})"),
        ("evaluation set", f"`{m.eval_set.id}`, {m.eval_set.size} digits"),
        ("per-class accuracy", ", ".join(f"{k}: {v:.1%}" for k, v in m.per_class_accuracy.items())),
        ("training params", ", ".join(f"{k}={v}" for k, v in sorted(t.params.items()))),
        ("data set", f"`{t.dataset.id}` (sha256 `{t.dataset.sha256[:12]}`, {t.dataset.train_size} training digits)"),
        ("accuracy on held-out feedback", feedback_accuracy(m)),
        ("feedback sets", feedback_sets(t)),
        ("fine-tuned from", fine_tuned_from(t)),
        ("code revision", f"`{t.code_revision}`"),
        ("runner", runner),
    ]
    table = "\n".join(f"| {key} | {value.replace('|', '/')} |" for key, value in rows)
    return (
        f"{manifest.name} {manifest.tag}, created {manifest.created_at.isoformat()}.\n\n"
        f"| metric | value |\n|---|---|\n{table}\n\n"
        f"Check the download with `sha256sum -c {SUMS_NAME}`.\n"
    )


def stage(release_dir: Path, staging: Path, version: int, signing_key: Path | None) -> ModelManifest:
    """Copy the release into `staging` as version N: manifest rewritten, SHA256SUMS redone, signed."""
    manifest = verify_model_dir(release_dir, required=(TFLITE_NAME, KERAS_NAME))
    for name in manifest.files:
        shutil.copyfile(release_dir / name, staging / name)
    manifest = manifest.model_copy(update={"version": str(version)})
    manifest_bytes = write_manifest(staging, manifest)
    if signing_key is not None:
        try:
            signature = signing.sign(manifest_bytes, signing_key.read_bytes())
        except signing.SignatureError as exc:
            raise PublishError(str(exc)) from None
        (staging / SIGNATURE_NAME).write_text(signature, encoding="utf-8")
    return verify_model_dir(staging, required=(TFLITE_NAME, KERAS_NAME))


def publish(args: argparse.Namespace, github: api.GitHubClient) -> int:
    release_dir: Path = args.release_dir
    manifest = verify_model_dir(release_dir, required=(TFLITE_NAME, KERAS_NAME))
    logger.info("%s: verified %s (%s files)", release_dir, manifest.name, len(manifest.files))

    with github.deadline(REQUEST_DEADLINE, "listing releases") as deadline:
        releases = github.list_releases(deadline)
    version = next_version(releases)
    serving = in_service(releases)

    metrics = evaluate_model_dir(release_dir)
    logger.info(
        "measured accuracy %.4f (%d/%d) on %s",
        metrics.accuracy,
        metrics.correct,
        metrics.eval_set.size,
        metrics.eval_set.id,
    )
    if metrics.accuracy < args.min_accuracy:
        logger.error("rejected: accuracy %.4f is below the minimum %.4f", metrics.accuracy, args.min_accuracy)
        return Exit.REJECTED
    if serving is not None:
        current = service_accuracy(github, serving)
        if metrics.accuracy < current - args.tolerance:
            logger.error(
                "rejected: accuracy %.4f is more than %.4f below %.4f of %s, the model in service",
                metrics.accuracy,
                args.tolerance,
                current,
                serving["tag_name"],
            )
            return Exit.REJECTED
        logger.info("in service: %s at %.4f (tolerance %.4f)", serving["tag_name"], current, args.tolerance)
    else:
        logger.info("no published model-vN release yet: only the minimum accuracy applies")

    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        staging = Path(tmp)
        staged = stage(release_dir, staging, version, args.signing_key)
        # model.json last: a reader that sees the manifest then finds every file it names
        assets = [staging / n for n in (*sorted(staged.files), SUMS_NAME, SIGNATURE_NAME, MANIFEST_NAME)]
        assets = [path for path in assets if path.is_file()]
        if args.dry_run:
            logger.info(
                "dry run: would publish %s to %s with %s", staged.tag, github.repo, ", ".join(p.name for p in assets)
            )
            return Exit.OK
        # Created as a draft, published only once every asset is up. If an upload fails the draft
        # stays behind: the poller lists only published releases, so it never sees a partial one,
        # and the next run takes the next N (drafts count for numbering). Delete such drafts by hand.
        with github.deadline(REQUEST_DEADLINE, f"creating {staged.tag}") as deadline:
            draft = github.create_draft(staged.tag, f"{staged.name} {staged.tag}", release_notes(staged), deadline)
        upload_url = draft.get("upload_url")
        if not isinstance(upload_url, str) or not isinstance(draft.get("id"), int):
            raise PublishError("the created release has no id or upload_url")
        for path in assets:
            logger.info("uploading %s (%d bytes)", path.name, path.stat().st_size)
            try:
                with github.deadline(REQUEST_DEADLINE, f"uploading {path.name}") as deadline:
                    github.upload(upload_url, path.name, path.read_bytes(), deadline)
            except api.GitHubError:
                logger.error("upload of %s failed; draft release %s is left unpublished", path.name, staged.tag)
                raise
        with github.deadline(REQUEST_DEADLINE, f"publishing {staged.tag}") as deadline:
            published = github.publish(draft["id"], deadline)
    logger.info("published %s: %s", staged.tag, published.get("html_url", ""))
    return Exit.OK


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="digit-publish",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("release_dir", type=Path, metavar="RELEASE_DIR")
    parser.add_argument("--repo", required=True, help="OWNER/REPO")
    parser.add_argument("--min-accuracy", type=float, default=0.985, help="default: %(default)s")
    parser.add_argument(
        "--tolerance", type=float, default=0.002, help="how far below the model in service (default: %(default)s)"
    )
    parser.add_argument("--signing-key", type=Path, help="Ed25519 private key (PEM): writes model.json.sig")
    parser.add_argument("--dry-run", action="store_true", help="check and gate, create nothing")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if not 0 <= args.min_accuracy <= 1 or not 0 <= args.tolerance <= 1:
        parser.error("--min-accuracy and --tolerance are fractions between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = os.environ.get("GITHUB_TOKEN") or None
    if token is None:
        logger.warning("GITHUB_TOKEN is not set: creating a release will fail, and drafts are not visible")
    try:
        api_url = os.environ.get("GITHUB_API_URL") or api.DEFAULT_API_URL
        github = api.GitHubClient(args.repo, api_url, token, user_agent="digit-publish", timeout=30.0)
    except ValueError as exc:
        logger.error("--repo: %s", exc)
        return Exit.ERROR
    try:
        return publish(args, github)
    except (PublishError, api.GitHubError, ManifestError, ModelLoadError, OSError) as exc:
        logger.error("not published: %s", exc)
        return Exit.ERROR
    finally:
        github.close()


if __name__ == "__main__":
    raise SystemExit(main())
