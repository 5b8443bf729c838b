"""Pods of rendered Kubernetes manifests, run under Docker as their specs say (no cluster runs here).

`kubectl kustomize` renders an overlay; `Cluster` starts each Deployment's and StatefulSet's pods
(as many as its replicas) as containers on a network of their own and polls their probes as the
kubelet does. What a pod spec says becomes `docker run` options, and what this runner cannot carry
over is refused by name rather than dropped:

| pod spec | under Docker |
|---|---|
| image, imagePullPolicy | the image, pulled as the kubelet would (IfNotPresent, Always, Never); each pull is recorded |
| command, args ($(VAR) expanded), workingDir | --entrypoint + arguments (command replaces ENTRYPOINT, args CMD), -w |
| env: value ($(VAR) expanded), secretKeyRef, configMapKeyRef, fieldRef metadata.* | -e, looked up in the rendered Secrets and ConfigMaps (and any given, as `kubectl create secret` makes them) |
| envFrom: configMapRef, secretRef, prefix | -e for every key (env wins over envFrom) |
| runAsUser, runAsGroup, fsGroup, supplementalGroups | --user UID:GID, --group-add |
| runAsNonRoot | refused if the user would be root, or is not numeric (as the kubelet does) |
| readOnlyRootFilesystem, allowPrivilegeEscalation: false, capabilities, privileged | --read-only, --security-opt no-new-privileges, --cap-drop/--cap-add, --privileged |
| seccompProfile RuntimeDefault / Unconfined / none | Docker's default profile / seccomp=unconfined / unconfined (Kubernetes' default) |
| emptyDir (sizeLimit), readOnly mounts | a tmpfs of that size, mode 2777 and group fsGroup (kubelet's emptyDir); unlike a disk-backed emptyDir, what is written there counts against the memory limit |
| volumeClaimTemplates / persistentVolumeClaim | an empty named volume (no copy of the image's files), its root given to fsGroup (g+rwx, setgid) as the kubelet does |
| resources.limits cpu, memory; requests.cpu | --cpus, --memory (no swap), --cpu-shares |
| Services selecting the pod | network aliases (the Service's name), when each port is the container's |
| restartPolicy Always | --restart always (RestartCount is kept: a test can insist on none) |
| startupProbe, readinessProbe, livenessProbe: httpGet, tcpSocket, exec | polled from the host at the container's address, or docker exec, with their timings and thresholds |
| terminationGracePeriodSeconds | --stop-timeout |
| scheduling (topologySpreadConstraints, affinity, nodeSelector, tolerations), serviceAccountName, lifecycle.preStop | noted, not needed: one node, no API server, and the tests never stop a pod gracefully |

Any other field of a pod spec or container is refused by name (PodError), so that a manifest change
this runner would not honour fails here instead of passing untried.
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from digit_testing.docker import Container, DockerError, Engine

# What `docker exec` takes to start a process, added to an exec probe's timeoutSeconds.
EXEC_START = 0.5
WORKLOAD_KINDS = ("StatefulSet", "Deployment")  # started in this order: databases before their clients
# The fields this runner honours (or, for scheduling and the like, knows it can leave out).
POD_FIELDS = {
    "containers", "volumes", "securityContext", "restartPolicy", "terminationGracePeriodSeconds",
    "serviceAccountName", "automountServiceAccountToken", "enableServiceLinks",
    "topologySpreadConstraints", "affinity", "nodeSelector", "tolerations", "priorityClassName",
}  # fmt: skip
CONTAINER_FIELDS = {
    "name", "image", "imagePullPolicy", "command", "args", "workingDir", "env", "envFrom", "ports",
    "resources", "securityContext", "volumeMounts", "startupProbe", "readinessProbe", "livenessProbe",
    "lifecycle", "terminationMessagePath", "terminationMessagePolicy",
}  # fmt: skip
SECURITY_FIELDS = {
    "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups", "seccompProfile",
    "readOnlyRootFilesystem", "allowPrivilegeEscalation", "capabilities", "privileged", "fsGroupChangePolicy",
}  # fmt: skip
PROBE_FIELDS = {
    "httpGet", "tcpSocket", "exec", "initialDelaySeconds", "periodSeconds", "timeoutSeconds",
    "successThreshold", "failureThreshold",
}  # fmt: skip


class PodError(RuntimeError):
    """A pod spec this runner cannot honour, or a pod that did not become ready."""


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity as a number: '512Mi' -> 536870912, '250m' -> 0.25, '1' -> 1."""
    text = str(value)
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for suffix, factor in suffixes.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    return float(text)


def secret_data(obj: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's or ConfigMap's keys and values (a Secret's data is base64)."""
    if obj["kind"] == "Secret":
        values = {key: base64.b64decode(value).decode() for key, value in (obj.get("data") or {}).items()}
        values.update(obj.get("stringData") or {})
        return values
    return {key: str(value) for key, value in (obj.get("data") or {}).items()}


def secret(name: str, namespace: str | None = None, **values: str) -> dict[str, Any]:
    """A Secret as `kubectl create secret generic NAME --from-literal=KEY=VALUE` makes it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in values.items()},
    }


@dataclass(frozen=True)
class Pod:
    """One pod of a workload: its name, template and the objects around it."""

    workload: Mapping[str, Any]
    index: int

    @property
    def name(self) -> str:
        workload_name = self.workload["metadata"]["name"]
        # A StatefulSet's pods are NAME-0, NAME-1...; a Deployment's get a random suffix in a cluster.
        return f"{workload_name}-{self.index}"

    @property
    def template(self) -> Mapping[str, Any]:
        template: Mapping[str, Any] = self.workload["spec"]["template"]
        return template

    @property
    def spec(self) -> Mapping[str, Any]:
        spec: Mapping[str, Any] = self.template["spec"]
        return spec

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.template.get("metadata", {}).get("labels", {}))


def pods(objects: Iterable[Mapping[str, Any]]) -> list[Pod]:
    """Every pod the workloads ask for (spec.replicas of each, 1 when unset), databases first."""
    workloads = [obj for obj in objects if obj.get("kind") in WORKLOAD_KINDS]
    workloads.sort(key=lambda obj: (WORKLOAD_KINDS.index(obj["kind"]), obj["metadata"]["name"]))
    return [Pod(w, i) for w in workloads for i in range(int(w["spec"].get("replicas", 1)))]


@dataclass
class Translation:
    """`docker run` options for one container of a pod, and the volumes they need made first."""

    options: list[str]
    image: str
    arguments: list[str]
    volumes: dict[str, int | None] = field(default_factory=dict)  # claim volume name -> fsGroup


def _where(pod: Pod, container: Mapping[str, Any]) -> str:
    """POD/CONTAINER, as errors name a container."""
    return f"{pod.name}/{container['name']}"


def _by_name(objects: Iterable[Mapping[str, Any]], kind: str, name: str) -> Mapping[str, Any] | None:
    return next((o for o in objects if o.get("kind") == kind and o["metadata"]["name"] == name), None)


def _expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) references to variables defined before; $$(VAR) stays $(VAR)."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        value,
    )


def environment(pod: Pod, container: Mapping[str, Any], objects: list[Mapping[str, Any]]) -> dict[str, str]:
    """The container's environment as the kubelet builds it; PodError for a reference it cannot resolve."""
    where = _where(pod, container)
    env: dict[str, str] = {}

    def source(ref: Mapping[str, Any], kind: str) -> dict[str, str] | None:
        obj = _by_name(objects, kind, ref["name"])
        if obj is None:
            if ref.get("optional"):
                return None
            raise PodError(f"{where}: {kind} {ref['name']} does not exist (the pod would not start)")
        return secret_data(obj)

    for entry in container.get("envFrom", []):
        ref, kind = (entry["configMapRef"], "ConfigMap") if "configMapRef" in entry else (entry["secretRef"], "Secret")
        values = source(ref, kind) or {}
        env.update({entry.get("prefix", "") + key: value for key, value in values.items()})
    for entry in container.get("env", []):
        name = entry["name"]
        if "valueFrom" not in entry:
            env[name] = _expand(str(entry.get("value", "")), env)
            continue
        value_from = entry["valueFrom"]
        for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            if key in value_from:
                ref = value_from[key]
                found = source(ref, kind)
                if found is None:
                    break
                if ref["key"] not in found:
                    if ref.get("optional"):
                        break
                    raise PodError(f"{where}: {kind} {ref['name']} has no key {ref['key']} (for {name})")
                env[name] = found[ref["key"]]
                break
        else:
            field_path = value_from.get("fieldRef", {}).get("fieldPath")
            fields = {
                "metadata.name": pod.name,
                "metadata.namespace": pod.workload["metadata"].get("namespace", "default"),
            }
            if field_path not in fields:
                raise PodError(f"{where}: env {name}: {value_from} is not supported by this runner")
            env[name] = fields[field_path]
    return env


def _security(pod: Pod, container: Mapping[str, Any], image_user: str) -> list[str]:
    where = _where(pod, container)
    pod_context = pod.spec.get("securityContext", {})
    context = {**pod_context, **container.get("securityContext", {})}
    options: list[str] = []
    uid, gid = context.get("runAsUser"), context.get("runAsGroup")
    if context.get("runAsNonRoot"):
        # The kubelet's check: a numeric non-zero user, from the spec or else the image.
        user = str(uid) if uid is not None else (image_user.partition(":")[0] or "0")  # no USER: root
        if not user.isdigit():
            raise PodError(f"{where}: runAsNonRoot and the image's user {image_user!r} is not numeric")
        if int(user) == 0:
            raise PodError(f"{where}: runAsNonRoot and the container would run as root")
    if uid is not None:
        options += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
    elif gid is not None:
        raise PodError(f"{where}: runAsGroup without runAsUser is not supported by this runner")
    groups = [pod_context["fsGroup"]] if "fsGroup" in pod_context else []
    groups += pod_context.get("supplementalGroups", [])
    for group in groups:
        options += ["--group-add", str(group)]
    if context.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    if context.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    if context.get("privileged"):
        options.append("--privileged")
    capabilities = context.get("capabilities", {})
    options += [f"--cap-drop={cap}" for cap in capabilities.get("drop", [])]
    options += [f"--cap-add={cap}" for cap in capabilities.get("add", [])]
    # No profile: Kubernetes runs the container unconfined (unless the kubelet says otherwise).
    seccomp = context.get("seccompProfile", {}).get("type", "Unconfined")
    if seccomp == "Unconfined":
        options += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":
        raise PodError(f"{where}: seccompProfile {seccomp} is not supported by this runner")
    return options


def _resources(container: Mapping[str, Any]) -> list[str]:
    resources = container.get("resources", {})
    limits, requests = resources.get("limits", {}), resources.get("requests", {})
    options: list[str] = []
    if "memory" in limits:
        memory = str(int(quantity(limits["memory"])))
        options += ["--memory", memory, "--memory-swap", memory]  # no swap, as on a kubelet
    if "cpu" in limits:
        options += ["--cpus", f"{quantity(limits['cpu']):g}"]
    if "cpu" in requests:
        options += ["--cpu-shares", str(max(2, int(quantity(requests["cpu"]) * 1024)))]
    return options


def _volumes(pod: Pod, container: Mapping[str, Any], prefix: str) -> tuple[list[str], dict[str, int | None]]:
    where = _where(pod, container)
    declared = {volume["name"]: volume for volume in pod.spec.get("volumes", [])}
    claims = {claim["metadata"]["name"] for claim in pod.workload["spec"].get("volumeClaimTemplates", [])}
    fs_group = pod.spec.get("securityContext", {}).get("fsGroup")
    options: list[str] = []
    made: dict[str, int | None] = {}
    for mount in container.get("volumeMounts", []):
        name, path = mount["name"], mount["mountPath"]
        read_only = ",ro" if mount.get("readOnly") else ""
        if name in claims or "persistentVolumeClaim" in declared.get(name, {}):
            claim = name if name in claims else declared[name]["persistentVolumeClaim"]["claimName"]
            # A StatefulSet's claim is per pod (CLAIM-POD), a named claim is shared.
            volume = f"{prefix}-{claim}-{pod.name}" if name in claims else f"{prefix}-{claim}"
            made[volume] = fs_group
            # volume-nocopy: a claim starts empty; Docker would fill it with the image's files there.
            options += ["--mount", f"type=volume,source={volume},target={path},volume-nocopy{read_only}"]
        elif "emptyDir" in declared.get(name, {}):
            empty_dir = declared[name]["emptyDir"] or {}
            tmpfs = ["ro" if mount.get("readOnly") else "rw", "exec", "nosuid", "nodev", "mode=2777"]
            if "sizeLimit" in empty_dir:
                tmpfs.append(f"size={int(quantity(empty_dir['sizeLimit']))}")
            if fs_group is not None:
                tmpfs.append(f"gid={fs_group}")
            options += ["--tmpfs", f"{path}:{','.join(tmpfs)}"]
        else:
            kind = next(iter(set(declared.get(name, {})) - {"name"}), "undeclared")
            raise PodError(f"{where}: volume {name} ({kind}) is not supported by this runner")
    return options, made


def _aliases(pod: Pod, container: Mapping[str, Any], objects: list[Mapping[str, Any]]) -> list[str]:
    """The Services that select this pod and whose ports are the container's own numbers.

    A network alias cannot map a Service's port to another container port, so a Service that does
    (the frontend's NodePort, 80 -> 8080) gets no alias: the tests reach that pod at its own port.
    """
    ports = {p.get("name"): int(p["containerPort"]) for p in container.get("ports", [])}
    aliases = []
    for service in (o for o in objects if o.get("kind") == "Service"):
        selector = service["spec"].get("selector") or {}
        if not selector or any(pod.labels.get(k) != v for k, v in selector.items()):
            continue
        targets = [
            (p["port"], ports.get(t) if isinstance(t := p.get("targetPort", p["port"]), str) else int(t))
            for p in service["spec"]["ports"]
        ]
        if all(port == target for port, target in targets):
            aliases.append(service["metadata"]["name"])
    return aliases


def _refuse_unknown(pod: Pod, container: Mapping[str, Any]) -> None:
    where = _where(pod, container)
    checks: list[tuple[str, Iterable[str], set[str]]] = [
        ("pod spec", pod.spec, POD_FIELDS),
        ("container", container, CONTAINER_FIELDS),
        ("pod securityContext", pod.spec.get("securityContext", {}), SECURITY_FIELDS),
        ("container securityContext", container.get("securityContext", {}), SECURITY_FIELDS),
        ("resources", container.get("resources", {}), {"limits", "requests"}),
        ("lifecycle", container.get("lifecycle", {}), {"preStop"}),
    ]
    probes = ("startupProbe", "readinessProbe", "livenessProbe")
    checks += [(kind, container[kind], PROBE_FIELDS) for kind in probes if kind in container]
    for kind in ("limits", "requests"):
        checks.append((f"resources.{kind}", container.get("resources", {}).get(kind, {}), {"cpu", "memory"}))
    for port in container.get("ports", []):
        checks.append(("port", port, {"name", "containerPort", "protocol"}))
    for mount in container.get("volumeMounts", []):
        checks.append(("volumeMount", mount, {"name", "mountPath", "readOnly"}))
    for what, fields, known in checks:
        unknown = sorted(set(fields) - known)
        if unknown:
            raise PodError(f"{where}: {what} field(s) {unknown} are not supported by this runner")
    if pod.spec.get("automountServiceAccountToken", True) is not False:
        raise PodError(f"{where}: no service account token can be mounted here: automountServiceAccountToken: false")
    if pod.spec.get("enableServiceLinks", True) is not False:
        raise PodError(f"{where}: Services' environment variables are not made here: enableServiceLinks: false")


def translate(
    pod: Pod,
    container: Mapping[str, Any],
    objects: list[Mapping[str, Any]],
    prefix: str,
    *,
    image_user: str = "",
    image: Callable[[str], str] = str,
) -> Translation:
    """The `docker run` options, image and arguments for one container of a pod."""
    if len(pod.spec.get("containers", [])) != 1:
        raise PodError(f"{pod.name}: pods of one container only")
    _refuse_unknown(pod, container)
    options = ["--hostname", pod.name]
    options += _security(pod, container, image_user)
    options += _resources(container)
    mounts, volumes = _volumes(pod, container, prefix)
    options += mounts
    env = environment(pod, container, objects)
    for key, value in env.items():
        options += ["-e", f"{key}={value}"]
    if "terminationGracePeriodSeconds" in pod.spec:
        options += ["--stop-timeout", str(pod.spec["terminationGracePeriodSeconds"])]
    for alias in _aliases(pod, container, objects):
        options += ["--network-alias", alias]
    if container.get("workingDir"):
        options += ["-w", container["workingDir"]]
    restart = pod.spec.get("restartPolicy", "Always")
    options += ["--restart", {"Always": "always", "OnFailure": "on-failure", "Never": "no"}[restart]]
    command = [_expand(str(word), env) for word in container.get("command", [])]
    arguments = [_expand(str(word), env) for word in container.get("args", [])]
    if command:
        options += ["--entrypoint", command[0]]
        arguments = [*command[1:], *arguments]
    return Translation(options, image(container["image"]), arguments, volumes)


# ---- probes ---------------------------------------------------------------------------------------


@dataclass
class Running:
    """A started container of a pod."""

    pod: Pod
    container: Mapping[str, Any]
    docker_name: str
    address: str
    started: float

    @property
    def where(self) -> str:
        return _where(self.pod, self.container)


def _port(running: Running, port: int | str) -> int:
    if isinstance(port, int):
        return port
    for declared in running.container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise PodError(f"{running.where}: a probe names port {port!r}, which the container does not declare")


def probe_once(engine: Engine, running: Running, probe: Mapping[str, Any]) -> str | None:
    """One try of a probe, as the kubelet makes it: None on success, else what failed."""
    timeout = float(probe.get("timeoutSeconds", 1))
    if "httpGet" in probe:
        get = probe["httpGet"]
        if get.get("scheme", "HTTP") != "HTTP":
            raise PodError(f"{running.where}: only HTTP probes are supported")
        connection = http.client.HTTPConnection(
            get.get("host") or running.address, _port(running, get["port"]), timeout=timeout
        )
        try:
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
            connection.request("GET", get.get("path", "/"), headers={"User-Agent": "kube-probe/1.30", **headers})
            status = connection.getresponse().status
        except OSError as error:
            return f"GET {get.get('path', '/')}: {error}"
        finally:
            connection.close()
        return None if 200 <= status < 400 else f"GET {get.get('path', '/')}: HTTP {status}"
    if "tcpSocket" in probe:
        try:
            tcp = probe["tcpSocket"]
            socket.create_connection(
                (tcp.get("host") or running.address, _port(running, tcp["port"])), timeout=timeout
            ).close()
        except OSError as error:
            return f"tcp: {error}"
        return None
    if "exec" in probe:
        command = probe["exec"]["command"]
        try:
            # The kubelet's timeout, plus what `docker exec` itself takes to start the process.
            result = engine("exec", running.docker_name, *command, check=False, timeout=timeout + EXEC_START)
        except DockerError as error:
            return str(error)
        return (
            None
            if result.returncode == 0
            else f"{' '.join(command)}: exit {result.returncode} {result.stdout}{result.stderr}".strip()
        )
    raise PodError(f"{running.where}: probe {sorted(probe)} is not supported by this runner")


def await_probe(engine: Engine, running: Running, kind: str, deadline: float, period: float | None = None) -> float:
    """Poll the container's `kind` probe until it passes; the seconds from `docker run` to that.

    The startup probe fails the pod after failureThreshold tries (the kubelet would restart it);
    the readiness probe is tried until `deadline`. `period` overrides periodSeconds (benchmarks
    poll faster to time the start itself). No probe of that kind: passes at once.
    """
    probe = running.container.get(kind)
    if not probe:
        return time.monotonic() - running.started
    every = period if period is not None else float(probe.get("periodSeconds", 10))
    first = running.started + float(probe.get("initialDelaySeconds", 0))
    time.sleep(max(0.0, first - time.monotonic()))
    failures, threshold = 0, int(probe.get("failureThreshold", 3))
    successes, needed = 0, int(probe.get("successThreshold", 1))
    while True:
        failure = probe_once(engine, running, probe)
        if failure is None:
            successes += 1
            if successes >= needed:
                return time.monotonic() - running.started
            time.sleep(every)
            continue
        successes = 0
        failures += 1
        if kind == "startupProbe" and failures >= threshold and period is None:
            raise PodError(f"{running.where}: startup probe failed {failures} times: {failure}")
        if time.monotonic() > deadline:
            state = engine.inspect(running.docker_name)[0]["State"]
            raise PodError(f"{running.where}: {kind} still failing ({failure}); container {state['Status']}")
        time.sleep(every)


# ---- a cluster of containers ----------------------------------------------------------------------


@dataclass
class Cluster:
    """The pods of one rendered overlay, as containers on a network of their own."""

    engine: Engine
    objects: list[Mapping[str, Any]]
    name: str
    image: Callable[[str], str] = str
    running: list[Running] = field(default_factory=list)
    pulled: list[str] = field(default_factory=list)  # the images this cluster pulled, in order

    @property
    def network(self) -> str:
        return f"digit-{self.name}-{self.engine.run_id}"

    def create_network(self) -> None:
        """The pods' network (made by start(); earlier for a container that stands for something outside)."""
        if self.engine("network", "inspect", self.network, check=False).returncode != 0:
            self.engine("network", "create", "--label", self.engine.label, self.network)

    def start(self) -> None:
        """Start every pod's container (databases first), not waiting for them."""
        self.create_network()
        for pod in pods(self.objects):
            for container in pod.spec["containers"]:
                self.running.append(self._start(pod, container))

    def _start(self, pod: Pod, container: Mapping[str, Any]) -> Running:
        image = self.image(container["image"])
        self._pull(image, container.get("imagePullPolicy"))
        image_user = str(self.engine.inspect(image, kind="image")[0]["Config"].get("User") or "")
        translation = translate(pod, container, self.objects, self.network, image_user=image_user, image=self.image)
        for volume, fs_group in translation.volumes.items():
            self._claim(volume, fs_group, translation.image)
        docker_name = f"{self.network}-{pod.name}"
        started = time.monotonic()
        self.engine(
            "run", "--detach", "--name", docker_name, "--network", self.network, "--label", self.engine.label,
            "--label", f"digit.pod={pod.name}", *translation.options, translation.image, *translation.arguments,
        )  # fmt: skip
        address = Container(self.engine, docker_name).address(self.network)
        return Running(pod, container, docker_name, address, started)

    def _pull(self, image: str, policy: str | None) -> None:
        """imagePullPolicy as the kubelet applies it (default: Always for :latest or no tag, else IfNotPresent)."""
        untagged = "@" not in image and ":" not in image.rsplit("/", 1)[-1]
        policy = policy or ("Always" if untagged or image.endswith(":latest") else "IfNotPresent")
        present = self.engine("image", "inspect", image, check=False).returncode == 0
        if policy == "Always" or (policy == "IfNotPresent" and not present):
            self.engine("pull", image, timeout=600)
            self.pulled.append(image)
        elif not present:
            raise PodError(f"{image}: imagePullPolicy Never and the image is not on the node")

    def _claim(self, volume: str, fs_group: int | None, image: str) -> None:
        """A claim's volume, made once, its root owned by fsGroup as the kubelet leaves it."""
        if self.engine("volume", "inspect", volume, check=False).returncode == 0:
            return
        self.engine("volume", "create", "--label", self.engine.label, volume)
        if fs_group is not None:
            self.engine(
                "run", "--rm", "--user", "0", "--label", self.engine.label, "--network", "none",
                "--entrypoint", "sh", "--mount", f"type=volume,source={volume},target=/volume", image,
                "-c", f"chgrp {fs_group} /volume && chmod g+rws /volume",
            )  # fmt: skip

    def wait_ready(self, timeout: float = 180, period: float | None = None) -> dict[str, float]:
        """Every container's startup and readiness probes passed, and its liveness probe once; seconds to ready."""
        deadline = time.monotonic() + timeout
        ready: dict[str, float] = {}
        for running in self.running:
            try:
                await_probe(self.engine, running, "startupProbe", deadline, period)
                ready[running.where] = await_probe(self.engine, running, "readinessProbe", deadline, period)
                # Once, after its delay: a deadline already passed makes the first failure final.
                await_probe(self.engine, running, "livenessProbe", time.monotonic(), period)
            except PodError as error:
                raise PodError(f"{error}\n--- its log:\n{self.docker(running).logs()[-4000:]}") from None
        return ready

    def docker(self, running: Running) -> Container:
        """The pod's container, to exec in (kubectl exec) or read the log of."""
        return Container(self.engine, running.docker_name)

    def restarts(self) -> dict[str, int]:
        return {r.where: int(self.engine.inspect(r.docker_name)[0]["RestartCount"]) for r in self.running}

    def of(self, workload: str) -> list[Running]:
        return [r for r in self.running if r.pod.workload["metadata"]["name"] == workload]

    def stop(self) -> None:
        """Remove the containers, the network and the claims' volumes."""
        names = [r.docker_name for r in self.running]
        if names:
            self.engine("rm", "--force", "--volumes", *names, check=False, timeout=120)
        self.running.clear()
        volumes = self.engine("volume", "ls", "-q", "--filter", f"name={self.network}-", check=False).stdout.split()
        if volumes:
            self.engine("volume", "rm", *volumes, check=False)
        self.engine("network", "rm", self.network, check=False)
