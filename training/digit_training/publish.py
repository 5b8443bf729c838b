"""Publish a verified release folder as the GitHub release `model-v<N>`, behind an evaluation gate.

    python -m digit_training.publish RELEASE_DIR --repo OWNER/REPO [--min-accuracy 0.985]
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
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx

from digit_api.inference import ModelLoadError
from digit_api.manifest import (
    KERAS_NAME,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    SUMS_NAME,
    TFLITE_NAME,
    ManifestError,
    Metrics,
    ModelManifest,
    TrainingInfo,
    file_entry,
    format_sha256sums,
    manifest_json,
    parse_manifest,
    verify_model_dir,
)
from digit_training.evaluate import evaluate_model_dir

logger = logging.getLogger("digit_training.publish")

API_VERSION = "2022-11-28"
USER_AGENT = "digit-training-publish"
TAG = re.compile(r"model-v([1-9][0-9]*)")
REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
MAX_PAGES = 10
MAX_REDIRECTS = 5
TIMEOUT = httpx.Timeout(30.0, write=300.0)


class Exit:
    OK = 0
    ERROR = 1
    REJECTED = 2


class PublishError(RuntimeError):
    """The release could not be published (network, HTTP status, unexpected answer)."""


def _safe_url(url: httpx.URL | str) -> str:
    """The URL for messages: no user info, no query (pre-signed storage URLs carry signatures)."""
    url = httpx.URL(str(url))
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


class GitHubReleases:
    """The few Releases API calls a publisher makes: list, read an asset, create, upload, publish."""

    def __init__(self, repo: str, api_url: str, token: str | None, client: httpx.Client | None = None) -> None:
        if not REPO.fullmatch(repo) or repo.split("/")[1] in {".", ".."}:
            raise ValueError(f"--repo must look like OWNER/REPO, got {repo!r}")
        self.repo = repo
        self.api_url = api_url.rstrip("/")
        self._token = token or None
        self._client = client or httpx.Client(timeout=TIMEOUT)

    def __repr__(self) -> str:  # the default repr would show the token
        return f"GitHubReleases({self.repo!r}, api_url={self.api_url!r})"

    def close(self) -> None:
        self._client.close()

    def _headers(self, accept: str = "application/vnd.github+json", with_token: bool = True) -> dict[str, str]:
        headers = {"Accept": accept, "X-GitHub-Api-Version": API_VERSION, "User-Agent": USER_AGENT}
        if self._token and with_token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _request(self, method: str, url: str, expect: int, **kwargs: Any) -> httpx.Response:
        headers = {**self._headers(), **kwargs.pop("headers", {})}
        try:
            response = self._client.request(method, url, headers=headers, follow_redirects=False, **kwargs)
        except httpx.HTTPError as error:
            detail = self._redact(str(error)) or type(error).__name__
            raise PublishError(f"{method} {_safe_url(url)} failed ({type(error).__name__}: {detail})") from None
        if response.status_code != expect:
            message = ""
            try:
                payload = response.json()
                message = str(payload.get("message", ""))
                if payload.get("errors"):
                    message += f" {payload['errors']}"
            except (ValueError, AttributeError):
                pass
            said = f": {self._redact(message[:300])}" if message else ""
            hint = "; check GITHUB_TOKEN" if response.status_code in {401, 403} else ""
            raise PublishError(f"{method} {_safe_url(url)} answered HTTP {response.status_code}{said}{hint}")
        return response

    def releases(self) -> list[dict[str, Any]]:
        """Every release the token can see (drafts need push access), following `Link: next`."""
        url: str | None = f"{self.api_url}/repos/{self.repo}/releases?per_page=100"
        found: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return found
            response = self._request("GET", url, 200)
            items = response.json()
            if not isinstance(items, list):
                raise PublishError(f"{_safe_url(url)} did not answer a list of releases")
            found += [item for item in items if isinstance(item, dict)]
            url = response.links.get("next", {}).get("url")
        raise PublishError(f"more than {MAX_PAGES} pages of releases on {self.repo}")

    def download_asset(self, url: str) -> bytes:
        """An asset's bytes; GitHub redirects to pre-signed storage, which must not get the token."""
        headers = self._headers("application/octet-stream")
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self._client.get(url, headers=headers, follow_redirects=False)
            except httpx.HTTPError as error:
                detail = self._redact(str(error)) or type(error).__name__
                raise PublishError(f"GET {_safe_url(url)} failed ({type(error).__name__}: {detail})") from None
            if response.is_redirect and response.headers.get("location"):
                url = str(response.url.join(response.headers["location"]))
                headers = self._headers("application/octet-stream", with_token=False)
                continue
            if response.status_code != 200:
                raise PublishError(f"GET {_safe_url(url)} answered HTTP {response.status_code}")
            return response.content
        raise PublishError(f"more than {MAX_REDIRECTS} redirects downloading {_safe_url(url)}")

    def create_draft(self, tag: str, name: str, body: str) -> dict[str, Any]:
        payload = {"tag_name": tag, "name": name, "body": body, "draft": True, "prerelease": False}
        return self._request("POST", f"{self.api_url}/repos/{self.repo}/releases", 201, json=payload).json()

    def upload(self, upload_url: str, path: Path) -> None:
        url = upload_url.split("{", 1)[0]  # the URI template: `.../assets{?name,label}`
        self._request(
            "POST",
            url,
            201,
            params={"name": path.name},
            content=path.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )

    def publish(self, release_id: int) -> dict[str, Any]:
        url = f"{self.api_url}/repos/{self.repo}/releases/{release_id}"
        return self._request("PATCH", url, 200, json={"draft": False}).json()


def version_of(tag: object) -> int | None:
    match = TAG.fullmatch(tag) if isinstance(tag, str) else None
    return int(match.group(1)) if match else None


def next_version(releases: list[dict[str, Any]]) -> int:
    """1 + the highest N of any `model-vN` release, drafts and pre-releases included."""
    return 1 + max((v for r in releases if (v := version_of(r.get("tag_name"))) is not None), default=0)


def in_service(releases: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The release the poller would serve: the highest N among published (not draft, not pre-release) ones."""
    published = [
        r
        for r in releases
        if r.get("draft") is False and r.get("prerelease") is False and version_of(r.get("tag_name"))
    ]
    return max(published, key=lambda r: version_of(r["tag_name"]) or 0, default=None)


def service_accuracy(github: GitHubReleases, release: dict[str, Any]) -> float:
    asset = next((a for a in release.get("assets") or [] if a.get("name") == MANIFEST_NAME), None)
    if asset is None or not isinstance(asset.get("url"), str):
        raise PublishError(f"the release in service, {release['tag_name']}, has no {MANIFEST_NAME} asset")
    try:
        return parse_manifest(github.download_asset(asset["url"])).metrics.accuracy
    except ManifestError as exc:
        raise PublishError(f"{release['tag_name']}: {exc}") from None


def feedback_accuracy(m: Metrics) -> str:
    if m.feedback is None or m.feedback.accuracy is None:
        return "none held out (trained without people's corrections)" if m.feedback is None else "none held out"
    return f"{m.feedback.accuracy:.2%} ({m.feedback.correct}/{m.feedback.size})"


def feedback_sets(t: TrainingInfo) -> str:
    if not t.feedback:
        return "none"
    return ", ".join(
        f"`{s.id}` (sha256 `{s.sha256[:12]}`, {s.train_size} trained on, {s.holdout_size} held out)" for s in t.feedback
    )


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
    manifest_bytes = manifest_json(manifest).encode()
    (staging / MANIFEST_NAME).write_bytes(manifest_bytes)
    sums = {**manifest.files, MANIFEST_NAME: file_entry(staging / MANIFEST_NAME)}
    (staging / SUMS_NAME).write_text(format_sha256sums(sums), encoding="utf-8")
    if signing_key is not None:
        (staging / SIGNATURE_NAME).write_text(sign(manifest_bytes, signing_key.read_bytes()), encoding="utf-8")
    return verify_model_dir(staging, required=(TFLITE_NAME, KERAS_NAME))


def sign(manifest: bytes, private_key_pem: bytes) -> str:
    """`model.json.sig`: base64 of the Ed25519 signature, the format digit_poller.signing verifies."""
    import base64  # noqa: PLC0415

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: PLC0415
    from cryptography.hazmat.primitives.serialization import load_pem_private_key  # noqa: PLC0415

    try:
        key = load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PublishError(f"the signing key is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PublishError("the signing key is not an Ed25519 private key")
    return base64.b64encode(key.sign(manifest)).decode() + "\n"


def publish(args: argparse.Namespace, github: GitHubReleases) -> int:
    release_dir: Path = args.release_dir
    manifest = verify_model_dir(release_dir, required=(TFLITE_NAME, KERAS_NAME))
    logger.info("%s: verified %s (%s files)", release_dir, manifest.name, len(manifest.files))

    releases = github.releases()
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
        draft = github.create_draft(staged.tag, f"{staged.name} {staged.tag}", release_notes(staged))
        upload_url = draft.get("upload_url")
        if not isinstance(upload_url, str) or not isinstance(draft.get("id"), int):
            raise PublishError("the created release has no id or upload_url")
        for path in assets:
            logger.info("uploading %s (%d bytes)", path.name, path.stat().st_size)
            try:
                github.upload(upload_url, path)
            except PublishError:
                logger.error("upload of %s failed; draft release %s is left unpublished", path.name, staged.tag)
                raise
        published = github.publish(draft["id"])
    logger.info("published %s: %s", staged.tag, published.get("html_url", ""))
    return Exit.OK


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m digit_training.publish",
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
        github = GitHubReleases(args.repo, os.environ.get("GITHUB_API_URL") or "https://api.github.com", token)
    except ValueError as exc:
        logger.error("%s", exc)
        return Exit.ERROR
    try:
        return publish(args, github)
    except (PublishError, ManifestError, ModelLoadError, OSError) as exc:
        logger.error("not published: %s", exc)
        return Exit.ERROR
    finally:
        github.close()


if __name__ == "__main__":
    raise SystemExit(main())
