"""The project's two images, built by the tests and benchmarks with the repository's Dockerfiles.

They are built as CI builds them (BuildKit, the repository root as context), on the stand-in bases
(digit_testing.standins) given as build arguments, with the CA bundle handed over as the build
secret `pip-ca`. That bundle is this machine's plus a canary certificate made for the run: no
file, layer or setting of a built image may hold the canary, or any other certificate of the
bundle that the image does not have itself (the check: `foreign_certificates`).
"""

from __future__ import annotations

import base64
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from digit_release.manifest import read_manifest
from digit_testing.docker import REPO, Engine
from digit_testing.releases import SHIPPED
from digit_testing.standins import Bases

API_DOCKERFILE = REPO / "api" / "Dockerfile"
FRONTEND_DOCKERFILE = REPO / "frontend" / "Dockerfile"
# How compose.yaml and the pod specs run every container: read-only root, a tmpfs on /tmp, no
# capabilities, no privilege escalation (`docker run` options).
LOCKED_DOWN = ("--read-only", "--cap-drop=ALL", "--security-opt", "no-new-privileges", "--tmpfs", "/tmp")  # noqa: S108
# Where Debian's update-ca-certificates takes a machine's own CAs from.
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True)
class ProjectImages:
    """The images one run built: `digit-api:TAG` and `digit-frontend:TAG` (compose's DIGIT_IMAGE_TAG=TAG)."""

    tag: str
    secret: Secret

    @property
    def api(self) -> str:
        return f"digit-api:{self.tag}"

    @property
    def frontend(self) -> str:
        return f"digit-frontend:{self.tag}"


@dataclass(frozen=True)
class Secret:
    """The build secret of a run: the bundle handed to the builds, and the certificates no image may hold."""

    bundle: Path
    watched: dict[str, bytes]  # where each came from -> its DER


def build_secret(bundle: Path, folder: Path, local_cas: Path = LOCAL_CAS) -> Secret:
    """`bundle` plus a fresh self-signed certificate (openssl), and what to look for in the images.

    Watched: the canary, and the CAs this machine added to its trust store itself (Debian's
    /usr/local/share/ca-certificates: an intercepting proxy's, here). The public roots in the
    bundle are not: an image rightly holds its own copies of them (certifi, Debian's store).
    """
    folder.mkdir(parents=True, exist_ok=True)
    canary = folder / "canary.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", "/CN=digit-test-canary", "-days", "2", "-keyout", str(folder / "canary.key"), "-out", str(canary)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    (folder / "canary.key").unlink()
    combined = folder / "pip-ca.pem"
    combined.write_bytes(bundle.read_bytes().rstrip(b"\n") + b"\n" + canary.read_bytes())
    watched = {f"canary {der[-8:].hex()}": der for der in certificates(canary.read_bytes())}
    for added in sorted(local_cas.glob("**/*.crt")) if local_cas.is_dir() else []:
        watched.update({f"{added} {der[-8:].hex()}": der for der in certificates(added.read_bytes())})
    return Secret(combined, watched)


def build(engine: Engine, bases: Bases, secret: Secret, *, version: str = "0.0.0-test") -> ProjectImages:
    """Both images, tagged with the run's id; the API's first (the frontend's build is seconds)."""
    images = ProjectImages(engine.run_id, secret)
    # The build arguments CI gives (deploy.yml), the model's version read as it reads it.
    model_version = read_manifest(SHIPPED).version
    common = {"VERSION": version, "REVISION": "test", "MODEL_VERSION": model_version, **bases.build_args()}
    engine.build(images.api, API_DOCKERFILE, build_args=common, secret=secret.bundle)
    engine.build(images.frontend, FRONTEND_DOCKERFILE, build_args=common, secret=secret.bundle)
    return images


def certificates(pem: bytes) -> set[bytes]:
    """The certificates of a PEM bundle, each as its DER bytes."""
    return {base64.b64decode(b"".join(body.split())) for body in PEM.findall(pem)}


def held_certificates(engine: Engine, image: str, secret: Secret) -> list[str]:
    """The watched certificates of the build secret that the image holds anywhere.

    The whole `docker save` stream is searched (every layer, the config, the history), for each
    certificate's first PEM line (64 base64 characters of its DER, unique to it) and its DER.
    """
    saved = subprocess.run([engine.cli, "save", image], capture_output=True, check=True, timeout=300).stdout
    return [
        f"{name} is in {image}"
        for name, der in secret.watched.items()
        if base64.b64encode(der)[:64] in saved or der in saved
    ]
