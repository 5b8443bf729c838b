"""The kustomize manifests (kubernetes/) render, are valid Kubernetes objects, and keep the project's rules.

No cluster here: every overlay is rendered with real kustomize (`kubectl kustomize`, kustomize v5),
each object is checked against the Kubernetes OpenAPI schema of a pinned version
(kubernetes-validate, strict: unknown fields are errors), and the rendered objects are read for
what a reviewer checks: probes, resources, locked-down containers, selectors, the network policy,
the wiring between nginx and the API, and each environment's sizes.

Without a renderer or kubernetes-validate the tests skip and say what to install; in CI
(CI=true) they fail instead, so a missing install step cannot pass unnoticed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from digit_testing.kube import RENDERER_HINT, renderer, with_database_env
from digit_testing.tooling import unavailable

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAYS = ("dev", "prod")
TARGETS = ("base", *OVERLAYS)
# The Kubernetes version the manifests must be valid for (the oldest cluster we support).
KUBERNETES_VERSION = "1.30.0"
VALIDATE_HINT = "kubernetes-validate is not installed: `.venv/bin/pip install kubernetes-validate`"

API = "digit-api"
FRONTEND = "digit-frontend"
PART_OF = "digit-recognition"
NAME_LABEL = "app.kubernetes.io/name"
REQUIRED_LABELS = (NAME_LABEL, "app.kubernetes.io/component", "app.kubernetes.io/part-of")
# The images as the prod overlay renders them, until automation/deploy.sh sets the real ones by
# these names (README.md).
PLACEHOLDER_IMAGES = {API: f"ghcr.io/OWNER/{API}", FRONTEND: f"ghcr.io/OWNER/{FRONTEND}"}
PROD_TAG = "0.0.0-prod"
# A lower-case image reference as a container runtime accepts it: [registry/]path[:tag][@digest].
IMAGE_REFERENCE = re.compile(
    r"^(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)


# ---- rendering ---------------------------------------------------------------------------------


DEV_DATABASE_ENV = KUBERNETES / "overlays" / "dev" / "database.env"


@cache
def _render_dir(directory: str) -> tuple[dict[str, Any], ...]:
    command = renderer()
    assert command is not None
    if Path(directory).resolve().is_relative_to(KUBERNETES.resolve()):
        directory = str(with_database_env() / Path(directory).resolve().relative_to(KUBERNETES.resolve()))
    result = subprocess.run([*command, directory], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{' '.join(command)} {directory} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(target: str | Path) -> list[dict[str, Any]]:
    """The objects of base, an overlay's name, or a kustomization folder (a fresh copy each call)."""
    if renderer() is None:
        unavailable(RENDERER_HINT)
    directory = target if isinstance(target, Path) else (BASE if target == "base" else KUBERNETES / "overlays" / target)
    return json.loads(json.dumps(_render_dir(str(directory))))


@pytest.fixture(params=TARGETS)
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


# ---- helpers -----------------------------------------------------------------------------------


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def workloads(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Deployments and StatefulSets: what runs pods."""
    return of_kind(objs, "Deployment") + of_kind(objs, "StatefulSet")


def named(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def containers(objs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(workload, pod spec, container) for every container and init container of Deployments and StatefulSets."""
    deployments = workloads(objs)
    assert deployments
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield deployment, pod, container


def where(deployment: dict[str, Any], container: dict[str, Any]) -> str:
    return f"{deployment['metadata']['name']}/{container['name']}"


def container_port(container: dict[str, Any], port: int | str) -> int:
    """The number a Service targetPort or a probe port means for this container."""
    if isinstance(port, int):
        assert any(p["containerPort"] == port for p in container.get("ports", [])), f"{port} is not declared"
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert numbers, f"{container['name']} has no port named {port}"
    return numbers[0]


def selected_deployment(objs: list[dict[str, Any]], selector: dict[str, str]) -> dict[str, Any]:
    """The one Deployment whose pods a matchLabels-style selector selects."""
    matches = [
        d for d in workloads(objs) if selector.items() <= d["spec"]["template"]["metadata"].get("labels", {}).items()
    ]
    assert len(matches) == 1, f"selector {selector} selects {len(matches)} workloads"
    return matches[0]


def the_container(deployment: dict[str, Any]) -> dict[str, Any]:
    pod_containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(pod_containers) == 1
    return pod_containers[0]


def image_tag(image: str) -> str | None:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def name_only(selector: dict[str, Any], what: str) -> dict[str, str]:
    """A label selector's matchLabels, after checking it selects on app.kubernetes.io/name alone."""
    labels = selector.get("matchLabels", selector)
    assert "matchExpressions" not in selector, f"{what}: matchExpressions"
    assert set(labels) == {NAME_LABEL}, f"{what} selects on {sorted(labels)}, not on {NAME_LABEL} alone"
    return labels


# ---- the files ---------------------------------------------------------------------------------


def kinds_of_folder(folder: Path) -> dict[str, str]:
    """kind -> file of a kustomization folder, after checking it lists every file and one kind a file."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    files = sorted(p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files, f"{folder} lists {kustomization['resources']}"
    kinds: dict[str, str] = {}
    for name in files:
        docs = [d for d in yaml.safe_load_all((folder / name).read_text()) if d]
        file_kinds = {d["kind"] for d in docs}
        assert len(file_kinds) == 1, f"{folder.name}/{name} holds {sorted(file_kinds)}"
        kind = file_kinds.pop()
        assert kind not in kinds, f"{kind} is in both {kinds.get(kind)} and {name} of {folder.name}"
        kinds[kind] = name
    return kinds


def test_base_is_a_folder_per_component_with_one_file_per_kind() -> None:
    base = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert sorted(base["resources"]) == ["api", "frontend"]
    assert sorted(p.name for p in BASE.glob("*.yaml")) == ["kustomization.yaml"]
    api, frontend = kinds_of_folder(BASE / "api"), kinds_of_folder(BASE / "frontend")
    autoscaling = kinds_of_folder(KUBERNETES / "components" / "autoscaling")
    assert set(api) == {"Deployment", "NetworkPolicy", "Service", "ServiceAccount"}
    assert set(frontend) == {"ConfigMap", "Deployment", "Service", "ServiceAccount"}
    assert set(autoscaling) == {"HorizontalPodAutoscaler", "PodDisruptionBudget"}
    component = yaml.safe_load((KUBERNETES / "components" / "autoscaling" / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"


@pytest.mark.parametrize("target", TARGETS)
def test_objects_are_valid_for_the_pinned_kubernetes_version(target: str) -> None:
    objs = render(target)
    try:
        import kubernetes_validate
    except ImportError:
        unavailable(VALIDATE_HINT)
    errors = []
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as error:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {getattr(error, 'message', error)}")
    assert not errors, "\n".join(errors)


def test_every_object_is_labelled(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        label_sets = {f"{obj['kind']}/{obj['metadata']['name']}": obj["metadata"].get("labels", {})}
        if obj["kind"] == "Deployment":
            label_sets[f"pods of {obj['metadata']['name']}"] = obj["spec"]["template"]["metadata"]["labels"]
        for what, labels in label_sets.items():
            missing = [key for key in REQUIRED_LABELS if not labels.get(key)]
            assert not missing, f"{what} lacks {missing}"
            assert labels["app.kubernetes.io/part-of"] == PART_OF, what


def test_the_stack_is_complete(objects: list[dict[str, Any]]) -> None:
    for name in (API, FRONTEND):
        named(objects, "Deployment", name)
        named(objects, "Service", name)
        named(objects, "ServiceAccount", name)
    named(objects, "ConfigMap", "digit-frontend-config")
    named(objects, "NetworkPolicy", API)


# ---- containers --------------------------------------------------------------------------------


def test_every_container_has_readiness_and_liveness_probes(objects: list[dict[str, Any]]) -> None:
    for deployment, _, container in containers(objects):
        for probe_kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(probe_kind)
            if probe is None and probe_kind == "startupProbe":
                continue
            assert probe, f"{where(deployment, container)} has no {probe_kind}"
            if container["name"] == "postgres":  # no HTTP in a database: its own readiness tool
                assert probe.get("exec", {}).get("command", [""])[0] == "pg_isready", probe
                continue
            assert "httpGet" in probe, f"{where(deployment, container)} {probe_kind} is not an HTTP check"
            container_port(container, probe["httpGet"]["port"])
            assert probe.get("timeoutSeconds", 1) <= probe.get("periodSeconds", 10)


def test_the_api_probes_its_health_routes(objects: list[dict[str, Any]]) -> None:
    api = the_container(named(objects, "Deployment", API))
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # Liveness gives a slow start time (or the startup probe does) before it may restart the pod.
    started_by = api.get("startupProbe") or api["livenessProbe"]
    assert (
        started_by.get("initialDelaySeconds", 0)
        + started_by.get("periodSeconds", 10) * started_by.get("failureThreshold", 3)
        >= 20
    )


def test_every_container_has_resource_requests_and_limits(objects: list[dict[str, Any]]) -> None:
    for deployment, _, container in containers(objects):
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                assert resources.get(bound, {}).get(resource), f"{where(deployment, container)}: no {bound}.{resource}"


def test_every_container_is_locked_down(objects: list[dict[str, Any]]) -> None:
    for deployment, pod, container in containers(objects):
        at = where(deployment, container)
        pod_context = pod.get("securityContext", {})
        context = container.get("securityContext", {})
        # The container's own settings win over the pod's.
        assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, at
        assert context.get("runAsUser", pod_context.get("runAsUser", 0)) != 0, at
        seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
        assert seccomp.get("type") in {"RuntimeDefault", "Localhost"}, at
        assert context.get("readOnlyRootFilesystem") is True, at
        assert context.get("allowPrivilegeEscalation") is False, at
        assert context.get("privileged", False) is False, at
        assert "ALL" in context.get("capabilities", {}).get("drop", []), at
        assert not context.get("capabilities", {}).get("add"), at
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), at


def test_the_images_run_as_their_own_users(objects: list[dict[str, Any]]) -> None:
    for name, uid in ((API, 10001), (FRONTEND, 101)):
        context = named(objects, "Deployment", name)["spec"]["template"]["spec"]["securityContext"]
        assert context["runAsUser"] == uid
        assert context.get("fsGroup") is not None


def test_writable_paths_are_empty_dirs(objects: list[dict[str, Any]]) -> None:
    """With a read-only root, what the process writes must be mounted: nginx-unprivileged writes three places."""
    writable = {API: {"/tmp"}, FRONTEND: {"/tmp", "/etc/nginx/conf.d", "/var/cache/nginx"}}  # noqa: S108
    for name, paths in writable.items():
        pod = named(objects, "Deployment", name)["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: m for m in the_container(named(objects, "Deployment", name)).get("volumeMounts", [])}
        for path in paths:
            assert path in mounts, f"{name}: nothing writable at {path}"
            assert "emptyDir" in volumes[mounts[path]["name"]], f"{name}: {path} is not an emptyDir"
            assert not mounts[path].get("readOnly"), f"{name}: {path} is mounted read-only"


def test_no_image_is_latest_or_untagged(objects: list[dict[str, Any]]) -> None:
    for deployment, _, container in containers(objects):
        tag = image_tag(container["image"])
        assert tag, f"{where(deployment, container)}: {container['image']} has no tag"
        assert tag != "latest", f"{where(deployment, container)}: {container['image']}"
        assert container.get("imagePullPolicy", "IfNotPresent") != "Always"


def test_images_are_the_projects(objects: list[dict[str, Any]]) -> None:
    for name in (API, FRONTEND):
        image = the_container(named(objects, "Deployment", name))["image"]
        assert image.split("@", 1)[0].rsplit(":", 1)[0].rsplit("/", 1)[-1] == name, image


def test_dev_images_are_valid_local_references() -> None:
    for deployment, _, container in containers(render("dev")):
        assert IMAGE_REFERENCE.match(container["image"]), where(deployment, container)


def test_the_api_is_configured_through_its_environment(objects: list[dict[str, Any]]) -> None:
    api = the_container(named(objects, "Deployment", API))
    env = {e["name"]: e.get("value") for e in api.get("env", [])}
    assert env["WORKERS"] == "1"
    assert env["LOG_LEVEL"] == "info"
    assert env.get("HOST") == "0.0.0.0"  # noqa: S104 - the pod's address, not the host's
    assert int(env.get("PORT", "8000")) == container_port(api, "http") == 8000


def test_deployments_roll_out_without_losing_capacity(objects: list[dict[str, Any]]) -> None:
    for deployment in of_kind(objects, "Deployment"):
        spec = deployment["spec"]
        name = deployment["metadata"]["name"]
        assert spec["strategy"]["type"] == "RollingUpdate", name
        assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}, name
        assert spec["revisionHistoryLimit"] == 5, name
        assert spec["progressDeadlineSeconds"] == 120, name
        pod = spec["template"]["spec"]
        assert 0 < pod.get("terminationGracePeriodSeconds", 0) <= 60, name


# ---- services, selectors, accounts ---------------------------------------------------------------


def test_the_api_is_internal_and_the_frontend_is_exposed(objects: list[dict[str, Any]]) -> None:
    api = named(objects, "Service", API)
    frontend = named(objects, "Service", FRONTEND)
    assert api["spec"]["type"] == "ClusterIP"
    assert frontend["spec"]["type"] == "NodePort"
    assert [(p["name"], p["port"], p["targetPort"]) for p in api["spec"]["ports"]] == [("http", 8000, "http")]
    assert [(p["port"], p["targetPort"]) for p in frontend["spec"]["ports"]] == [(80, "http")]


def test_services_reach_declared_container_ports(objects: list[dict[str, Any]]) -> None:
    for service in of_kind(objects, "Service"):
        deployment = selected_deployment(objects, service["spec"]["selector"])
        for port in service["spec"]["ports"]:
            container_port(the_container(deployment), port["targetPort"])
    assert container_port(the_container(named(objects, "Deployment", FRONTEND)), "http") == 8080


def test_selectors_use_only_the_name_label_and_match_the_pods(objects: list[dict[str, Any]]) -> None:
    for deployment in workloads(objects):
        name = deployment["metadata"]["name"]
        selector = name_only(deployment["spec"]["selector"], f"Deployment {name}")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items(), f"Deployment {name} does not select its own pods"
        assert selector[NAME_LABEL] == name
        for constraint in deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", []):
            assert name_only(constraint["labelSelector"], f"{name} spread") == selector
    for service in of_kind(objects, "Service"):
        selector = name_only(service["spec"]["selector"], f"Service {service['metadata']['name']}")
        assert selected_deployment(objects, selector)["metadata"]["name"] == service["metadata"]["name"]
    for budget in of_kind(objects, "PodDisruptionBudget"):
        selector = name_only(budget["spec"]["selector"], f"PodDisruptionBudget {budget['metadata']['name']}")
        selected_deployment(objects, selector)
    for policy in of_kind(objects, "NetworkPolicy"):
        selected_deployment(objects, name_only(policy["spec"]["podSelector"], "NetworkPolicy"))
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        named(objects, "Deployment", target["name"])


def test_no_pod_gets_a_service_account_token(objects: list[dict[str, Any]]) -> None:
    for deployment in workloads(objects):
        pod = deployment["spec"]["template"]["spec"]
        account_name = pod.get("serviceAccountName")
        assert account_name and account_name != "default", deployment["metadata"]["name"]
        account = named(objects, "ServiceAccount", account_name)
        assert account.get("automountServiceAccountToken") is False, account_name
        assert pod.get("automountServiceAccountToken", False) is False, deployment["metadata"]["name"]


def test_the_network_policy_admits_only_the_frontend(objects: list[dict[str, Any]]) -> None:
    api = named(objects, "Deployment", API)
    frontend_labels = named(objects, "Deployment", FRONTEND)["spec"]["template"]["metadata"]["labels"]
    api_labels = api["spec"]["template"]["metadata"]["labels"]
    policies = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if p["spec"]["podSelector"].get("matchLabels", {}).items() <= api_labels.items()
    ]
    assert len(policies) == 1
    spec = policies[0]["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"], "an empty rule list would admit nobody, not the frontend"
    for rule in spec["ingress"]:
        assert rule.get("from"), "a rule without `from` admits every pod"
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, f"peer {peer} reaches beyond the namespace's frontend pods"
            selector = name_only(peer["podSelector"], "NetworkPolicy peer")
            assert selector.items() <= frontend_labels.items()
            assert not selector.items() <= api_labels.items()
        assert rule.get("ports"), "a rule without ports opens every port"
        for port in rule["ports"]:
            assert port.get("protocol", "TCP") == "TCP"
            assert container_port(the_container(api), port["port"]) == 8000


def test_the_frontend_points_at_the_api_service(objects: list[dict[str, Any]]) -> None:
    frontend = the_container(named(objects, "Deployment", FRONTEND))
    upstream = None
    for source in frontend.get("envFrom", []):
        if "configMapRef" in source:
            data = named(objects, "ConfigMap", source["configMapRef"]["name"]).get("data", {})
            upstream = data.get("API_UPSTREAM", upstream)
    for variable in frontend.get("env", []):
        if variable["name"] == "API_UPSTREAM":
            reference = variable.get("valueFrom", {}).get("configMapKeyRef")
            if reference:
                upstream = named(objects, "ConfigMap", reference["name"])["data"][reference["key"]]
            else:
                upstream = variable.get("value")
    assert upstream, "the frontend has no API_UPSTREAM"
    host, _, port = upstream.rpartition(":")
    service = named(objects, "Service", host)
    assert service["metadata"]["name"] == API
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}


# ---- environments ------------------------------------------------------------------------------


def test_prod_runs_several_api_pods_and_scales_them() -> None:
    objs = render("prod")
    api = named(objs, "Deployment", API)
    assert api["spec"]["replicas"] == 3
    assert named(objs, "Deployment", FRONTEND)["spec"]["replicas"] == 2
    hpa = named(objs, "HorizontalPodAutoscaler", API)["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    assert 2 <= hpa["minReplicas"] <= api["spec"]["replicas"] <= hpa["maxReplicas"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    budget = named(objs, "PodDisruptionBudget", API)["spec"]
    assert budget["minAvailable"] == 1 < hpa["minReplicas"]


def test_the_autoscaling_component_bounds_the_autoscaler(tmp_path: Path) -> None:
    """The component on the base alone, as any overlay with several pods would include it."""
    outer = tmp_path / "with-autoscaling"
    outer.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(BASE, outer)],
        "components": [os.path.relpath(KUBERNETES / "components" / "autoscaling", outer)],
    }
    (outer / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    objs = render(outer)
    hpa = named(objs, "HorizontalPodAutoscaler", API)["spec"]
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    assert named(objs, "PodDisruptionBudget", API)["spec"]["minAvailable"] == 1
    assert not of_kind(render("base"), "HorizontalPodAutoscaler")  # only where an overlay includes it


def test_dev_is_one_pod_each_on_a_fixed_node_port() -> None:
    objs = render("dev")
    for name in (API, FRONTEND):
        assert named(objs, "Deployment", name)["spec"]["replicas"] == 1
    # One replica: no autoscaler to fight over it, no budget that would block every eviction.
    assert not of_kind(objs, "HorizontalPodAutoscaler")
    assert not of_kind(objs, "PodDisruptionBudget")
    [port] = named(objs, "Service", FRONTEND)["spec"]["ports"]
    assert port["nodePort"] == 30080


def test_prod_images_are_placeholders_that_an_outer_kustomization_sets(tmp_path: Path) -> None:
    """What deploy.sh does (kubernetes/README.md): a temporary kustomization over overlays/prod sets the images.

    It names them by their placeholder names; the repository's files stay as they are.
    """
    for deployment, _, container in containers(render("prod")):
        assert container["image"] == f"{PLACEHOLDER_IMAGES[deployment['metadata']['name']]}:{PROD_TAG}"

    sha = "0123456789abcdef0123456789abcdef01234567"
    outer = tmp_path / "deploy"
    outer.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(KUBERNETES / "overlays" / "prod", outer)],
        "images": [
            {"name": placeholder, "newName": f"ghcr.io/example-org/{name}", "newTag": sha}
            for name, placeholder in PLACEHOLDER_IMAGES.items()
        ],
    }
    (outer / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    objs = render(outer)
    for name in PLACEHOLDER_IMAGES:
        image = the_container(named(objs, "Deployment", name))["image"]
        assert image == f"ghcr.io/example-org/{name}:{sha}"
        assert IMAGE_REFERENCE.match(image)
    assert named(objs, "Deployment", API)["spec"]["replicas"] == 3


# ---- the feedback store --------------------------------------------------------------------------

API_DATABASE = "digit-api-database"
POSTGRES = "digit-postgres"


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def secret_ref(container: dict[str, Any], variable: str) -> dict[str, str]:
    reference = env_of(container)[variable].get("valueFrom", {}).get("secretKeyRef")
    assert reference, f"{container['name']}: {variable} is not read from a Secret"
    return reference


def test_the_api_reads_database_url_from_a_secret(objects: list[dict[str, Any]]) -> None:
    api = the_container(named(objects, "Deployment", API))
    reference = secret_ref(api, "DATABASE_URL")
    assert reference["key"] == "DATABASE_URL"
    assert reference["name"].startswith(API_DATABASE)
    assert "value" not in env_of(api)["DATABASE_URL"]


def test_dev_runs_postgresql_as_a_locked_down_stateful_set_with_its_own_volume() -> None:
    objs = render("dev")
    database = named(objs, "StatefulSet", POSTGRES)
    spec = database["spec"]
    assert spec["replicas"] == 1 and spec["serviceName"] == POSTGRES
    pod = spec["template"]["spec"]
    container = the_container(database)
    name, _, tag = container["image"].partition(":")
    assert name == "postgres" and tag and tag != "latest"  # the official image, pinned
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 999
    assert pod["securityContext"]["fsGroup"] == 999
    [claim] = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"] and claim["spec"]["resources"]["requests"]["storage"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    data_dir = mounts[claim["metadata"]["name"]]
    pgdata = env_of(container)["PGDATA"]["value"]
    assert pgdata.startswith(data_dir + "/"), "initdb needs its own folder inside the volume"
    service = named(objs, "Service", POSTGRES)
    assert service["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in service["spec"]["ports"]] == [5432]
    assert selected_deployment(objs, service["spec"]["selector"]) is database


def test_only_the_api_reaches_the_database() -> None:
    objs = render("dev")
    database_labels = named(objs, "StatefulSet", POSTGRES)["spec"]["template"]["metadata"]["labels"]
    api_labels = named(objs, "Deployment", API)["spec"]["template"]["metadata"]["labels"]
    frontend_labels = named(objs, "Deployment", FRONTEND)["spec"]["template"]["metadata"]["labels"]
    policy = named(objs, "NetworkPolicy", POSTGRES)["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= database_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    [rule] = policy["ingress"]
    [peer] = rule["from"]
    assert set(peer) == {"podSelector"}
    selector = name_only(peer["podSelector"], "database peer")
    assert selector.items() <= api_labels.items() and not selector.items() <= frontend_labels.items()
    assert [(p.get("protocol", "TCP"), p["port"]) for p in rule["ports"]] == [("TCP", 5432)]


def test_dev_wires_one_generated_secret_to_the_api_and_the_database() -> None:
    import base64

    objs = render("dev")
    [secret] = of_kind(objs, "Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    api = the_container(named(objs, "Deployment", API))
    database = the_container(named(objs, "StatefulSet", POSTGRES))
    assert secret_ref(api, "DATABASE_URL")["name"] == secret["metadata"]["name"]
    assert secret_ref(database, "POSTGRES_PASSWORD") == {"name": secret["metadata"]["name"], "key": "POSTGRES_PASSWORD"}
    from sqlalchemy.engine import make_url

    url = make_url(data["DATABASE_URL"])
    env = env_of(database)
    assert (url.host, url.port) == (POSTGRES, 5432)
    assert (url.username, url.database) == (env["POSTGRES_USER"]["value"], env["POSTGRES_DB"]["value"])
    assert url.password == data["POSTGRES_PASSWORD"]


def test_no_database_password_is_committed() -> None:
    """The dev password is made on each machine (Makefile); git ignores the file that holds it."""
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(DEV_DATABASE_ENV)], cwd=ROOT, check=False, capture_output=True
    )
    assert ignored.returncode == 0, "kubernetes/overlays/dev/database.env must be in .gitignore"
    tracked = subprocess.run(["git", "ls-files", "kubernetes"], cwd=ROOT, check=True, capture_output=True, text=True)
    assert "database.env" not in tracked.stdout.split()
    for path in KUBERNETES.rglob("*.yaml"):
        assert "POSTGRES_PASSWORD=" not in path.read_text(), path


def test_prod_uses_a_managed_database_whose_secret_is_made_outside_the_repository() -> None:
    objs = render("prod")
    assert not of_kind(objs, "Secret") and not of_kind(objs, "StatefulSet")
    assert secret_ref(the_container(named(objs, "Deployment", API)), "DATABASE_URL")["name"] == API_DATABASE
    notes = (KUBERNETES / "overlays" / "prod" / "kustomization.yaml").read_text()
    assert "kubectl -n digit create secret generic digit-api-database" in notes
