#!/usr/bin/env bash
# Rolls the digit stack out to Kubernetes and checks that it serves the model of this checkout.
# The deploy workflow (.github/workflows/deploy.yml) runs it on the self-hosted runner.
#
# Deploy: the overlay is rendered with the two images set, in a temporary kustomization that
# references the overlay (the repository's files are never modified), and applied; then both
# rollouts are awaited and the API is asked, from inside its pod (kubectl exec ... python), for
# /readyz, whose model_version must be the `version` of api/models/model.json in this checkout.
# Any failure from the apply on rolls both deployments back to the revisions they had before,
# says what failed, and exits 1.
# --rollback: undoes the last rollout of both deployments and waits for them.
# --render-only: prints the manifests a deploy would apply, images set, and touches no cluster
# (a review of what will change, or the pod specs the tests run under Docker).
#
# Environment: KUBECTL (default kubectl) with a kubeconfig for the cluster; KUSTOMIZE (default
# kustomize: used when it is on PATH, otherwise kubectl's built-in kustomize);
# DEPLOY_CHECK_ATTEMPTS (default 3) and DEPLOY_CHECK_DELAY (seconds, default 5) for /readyz.
# Needs bash 4+, python3 (standard library only) and kubectl.
# Exit status: 0 done, 1 failed (after a rollback when anything had been applied), 2 bad arguments.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
MODEL_JSON="$REPO_ROOT/api/models/model.json"
DEPLOYMENTS=(digit-api digit-frontend)

usage() {
    cat <<'EOF'
usage: deploy.sh --api-image IMAGE:TAG --frontend-image IMAGE:TAG [--namespace NS]
                 [--overlay DIR] [--timeout DURATION] [--render-only]
       deploy.sh --rollback [--namespace NS] [--timeout DURATION]

  --api-image IMAGE      image of deployment/digit-api (IMAGE:TAG or IMAGE@sha256:DIGEST)
  --frontend-image IMAGE image of deployment/digit-frontend
  --namespace NS         Kubernetes namespace (default: digit)
  --overlay DIR          kustomize overlay; a relative path is taken from the repository root
                         (default: kubernetes/overlays/prod)
  --timeout DURATION     how long each rollout may take, e.g. 180s or 5m (default: 180s)
  --render-only          print the manifests that would be applied (images set) and exit;
                         no cluster is read or changed
  --rollback             undo the last rollout of digit-api and digit-frontend and wait for it

A failed deploy (apply, rollout, /readyz, or a served model_version that is not the version in
api/models/model.json) is rolled back to the revisions from before the deploy; exit status 1.
EOF
}

die_usage() {
    echo "deploy.sh: $1" >&2
    usage >&2
    exit 2
}

die() {
    echo "deploy.sh: $1" >&2
    exit "${2:-1}"
}

MODE=deploy
RENDER_ONLY=""
API_IMAGE=""
FRONTEND_IMAGE=""
NAMESPACE="digit"
OVERLAY="kubernetes/overlays/prod"
TIMEOUT="180s"

while (($#)); do
    # --option=value is taken as --option value, so each option is parsed once below.
    if [[ $1 == --*=* ]]; then
        set -- "${1%%=*}" "${1#*=}" "${@:2}"
    fi
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        --rollback)
            MODE=rollback
            shift
            continue
            ;;
        --render-only)
            RENDER_ONLY=1
            shift
            continue
            ;;
        --api-image | --frontend-image | --namespace | --overlay | --timeout)
            [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die_usage "$1 needs a value"
            case "$1" in
                --api-image) API_IMAGE="$2" ;;
                --frontend-image) FRONTEND_IMAGE="$2" ;;
                --namespace) NAMESPACE="$2" ;;
                --overlay) OVERLAY="$2" ;;
                --timeout) TIMEOUT="$2" ;;
            esac
            shift 2
            ;;
        *) die_usage "unknown argument: $1" ;;
    esac
done

[[ "$NAMESPACE" =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || die_usage "--namespace $NAMESPACE is not a namespace name"
[[ "$TIMEOUT" =~ ^([0-9]+(ms|s|m|h))+$ ]] || die_usage "--timeout $TIMEOUT is not a duration such as 180s or 5m"
attempts="${DEPLOY_CHECK_ATTEMPTS:-3}"
[[ "$attempts" =~ ^[1-9][0-9]{0,2}$ ]] || die "DEPLOY_CHECK_ATTEMPTS=$attempts is not a number from 1 to 999" 2
[[ "${DEPLOY_CHECK_DELAY:-5}" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "DEPLOY_CHECK_DELAY=$DEPLOY_CHECK_DELAY is not a number of seconds" 2

# Every kubectl call goes through here: one binary, one namespace.
kube() {
    "${KUBECTL:-kubectl}" -n "$NAMESPACE" "$@"
}

# parse_image REF: sets IMAGE_NAME and either IMAGE_TAG or IMAGE_DIGEST; fails unless REF is
# NAME:TAG or NAME@sha256:DIGEST with a lowercase name (what registries accept).
parse_image() {
    local ref="$1"
    IMAGE_NAME="" IMAGE_TAG="" IMAGE_DIGEST=""
    if [[ "$ref" == *@* ]]; then
        IMAGE_NAME="${ref%%@*}"
        IMAGE_DIGEST="${ref#*@}"
        if [[ "${IMAGE_NAME##*/}" == *:* ]]; then
            IMAGE_NAME="${IMAGE_NAME%:*}" # NAME:TAG@DIGEST: the digest wins
        fi
        [[ "$IMAGE_DIGEST" =~ ^sha256:[0-9a-f]{64}$ ]] || return 1
    else
        [[ "${ref##*/}" == *:* ]] || return 1
        IMAGE_NAME="${ref%:*}"
        IMAGE_TAG="${ref##*:}"
        [[ "$IMAGE_TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || return 1
    fi
    [[ "$IMAGE_NAME" =~ ^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?$ ]]
}

# image_names DEPLOYMENT: the names the overlay may give that deployment's image (after
# parse_image): the placeholder ghcr.io/OWNER/DEPLOYMENT that kubernetes/base uses, the
# deployment's name, and the new image's short and full names.
image_names() {
    printf '%s\n' "ghcr.io/OWNER/$1" "$1" "${IMAGE_NAME##*/}" "$IMAGE_NAME" | sort -u
}

# roll_back last|recorded: undo both deployments (to their previous revision, or to the revision
# recorded before this deploy) and wait for them; fails if any step fails.
roll_back() {
    local to="$1" deployment rc=0 revision
    for deployment in "${DEPLOYMENTS[@]}"; do
        if [[ "$to" == recorded ]]; then
            revision="${REVISION_BEFORE[$deployment]}"
            if [[ -z "$revision" ]]; then
                echo "deploy.sh: deployment/$deployment did not exist before this deploy: no revision to roll back to" >&2
                continue
            fi
            kube rollout undo "deployment/$deployment" --to-revision="$revision" || rc=1
        else
            kube rollout undo "deployment/$deployment" || rc=1
        fi
    done
    for deployment in "${DEPLOYMENTS[@]}"; do
        if [[ "$to" == recorded && -z "${REVISION_BEFORE[$deployment]}" ]]; then
            continue
        fi
        kube rollout status "deployment/$deployment" --timeout="$TIMEOUT" || rc=1
    done
    return "$rc"
}

if [[ "$MODE" == rollback ]]; then
    [[ -z "$API_IMAGE" && -z "$FRONTEND_IMAGE" ]] || die_usage "--rollback takes no images"
    [[ -z "$RENDER_ONLY" ]] || die_usage "--rollback renders nothing: --render-only goes with a deploy"
    echo "deploy.sh: rolling deployment/digit-api and deployment/digit-frontend back in namespace $NAMESPACE"
    roll_back last || die "the rollback did not complete: check 'kubectl -n $NAMESPACE rollout history'"
    echo "deploy.sh: rolled back"
    exit 0
fi

# --- deploy: check everything before touching the cluster ---
[[ -n "$API_IMAGE" ]] || die_usage "--api-image is required"
[[ -n "$FRONTEND_IMAGE" ]] || die_usage "--frontend-image is required"
declare -A IMAGE_REF=(["digit-api"]="$API_IMAGE" ["digit-frontend"]="$FRONTEND_IMAGE")
for deployment in "${DEPLOYMENTS[@]}"; do
    parse_image "${IMAGE_REF[$deployment]}" ||
        die_usage "${IMAGE_REF[$deployment]} is not IMAGE:TAG or IMAGE@sha256:DIGEST (with a lowercase name)"
    IMAGE_REF[$deployment]="$IMAGE_NAME${IMAGE_TAG:+:$IMAGE_TAG}${IMAGE_DIGEST:+@$IMAGE_DIGEST}" # as kustomize writes it
done

[[ "$OVERLAY" == /* ]] || OVERLAY="$REPO_ROOT/$OVERLAY"
[[ -f "$OVERLAY/kustomization.yaml" || -f "$OVERLAY/kustomization.yml" || -f "$OVERLAY/Kustomization" ]] ||
    die "--overlay $OVERLAY is not a kustomize directory (no kustomization.yaml)" 2
command -v python3 >/dev/null || die "python3 is needed (to read api/models/model.json)"
EXPECTED_VERSION="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1], encoding="utf-8"))["version"])' "$MODEL_JSON")" ||
    die "cannot read the version from $MODEL_JSON"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/digit-deploy.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
KUSTOMIZATION="$WORK/overlay"
mkdir "$KUSTOMIZATION"
RENDERED="$WORK/rendered.yaml"

# The temporary kustomization: the real overlay as its only resource (a relative path, as
# kustomize wants), plus an `images:` block setting each image under every name the overlay may
# use for it (see image_names; names that match nothing are no-ops).
overlay_relative="$(python3 -c 'import json, os, sys; print(json.dumps(os.path.relpath(sys.argv[1], sys.argv[2])))' \
    "$(cd "$OVERLAY" && pwd -P)" "$(cd "$KUSTOMIZATION" && pwd -P)")"
{
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources:"
    echo "  - $overlay_relative"
} >"$KUSTOMIZATION/kustomization.yaml"

{
    echo "images:"
    for deployment in "${DEPLOYMENTS[@]}"; do
        parse_image "${IMAGE_REF[$deployment]}"
        mapfile -t names < <(image_names "$deployment")
        for name in "${names[@]}"; do
            echo "  - name: $name"
            echo "    newName: $IMAGE_NAME"
            if [[ -n "$IMAGE_TAG" ]]; then
                echo "    newTag: \"$IMAGE_TAG\""
            else
                echo "    digest: $IMAGE_DIGEST"
            fi
        done
    done
} >>"$KUSTOMIZATION/kustomization.yaml"

# One render: a standalone kustomize when there is one (it may be newer), else kubectl's own.
KUSTOMIZE_BIN="${KUSTOMIZE:-kustomize}"
if command -v "$KUSTOMIZE_BIN" >/dev/null; then
    "$KUSTOMIZE_BIN" build "$KUSTOMIZATION" >"$RENDERED" || die "kustomize build of $OVERLAY failed"
else
    kube kustomize "$KUSTOMIZATION" >"$RENDERED" || die "kubectl kustomize of $OVERLAY failed"
fi

for deployment in "${DEPLOYMENTS[@]}"; do
    ref="${IMAGE_REF[$deployment]}"
    if ! grep -qF -e "image: $ref" -e "image: \"$ref\"" -e "image: '$ref'" "$RENDERED"; then
        parse_image "$ref"
        die "$ref is not in the rendered overlay: kustomize sets images by name, and the container image of \
deployment/$deployment in $OVERLAY has none of the names $(image_names "$deployment" | paste -sd ',' -); nothing was applied"
    fi
done

if [[ -n "$RENDER_ONLY" ]]; then
    cat "$RENDERED"
    exit 0
fi

# The revisions to come back to if anything below fails (empty: the deployment is new).
declare -A REVISION_BEFORE=()
for deployment in "${DEPLOYMENTS[@]}"; do
    REVISION_BEFORE[$deployment]="$(kube get "deployment/$deployment" --ignore-not-found \
        -o 'jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}')" ||
        die "cannot read deployment/$deployment in namespace $NAMESPACE (is kubectl set up for the cluster?); nothing was applied"
done

fail_and_roll_back() {
    local what="$1"
    trap - INT TERM
    echo "deploy.sh: FAILED: $what" >&2
    echo "deploy.sh: rolling deployment/digit-api and deployment/digit-frontend back to their revisions before this deploy" >&2
    if roll_back recorded; then
        echo "deploy.sh: deploy failed and was rolled back: $what" >&2
    else
        echo "deploy.sh: deploy failed and the rollback did not complete either (check the cluster): $what" >&2
    fi
    exit 1
}
trap 'fail_and_roll_back "interrupted by a signal"' INT TERM

echo "deploy.sh: applying $OVERLAY to namespace $NAMESPACE with ${IMAGE_REF["digit-api"]} and ${IMAGE_REF["digit-frontend"]}"
kube apply -f - <"$RENDERED" || fail_and_roll_back "kubectl apply of $OVERLAY failed"

for deployment in "${DEPLOYMENTS[@]}"; do
    kube rollout status "deployment/$deployment" --timeout="$TIMEOUT" ||
        fail_and_roll_back "the rollout of deployment/$deployment did not complete within $TIMEOUT"
done

# Runs inside the API's container: GET /readyz on the container's own port and print model_version.
# shellcheck disable=SC2016  # Python source, not shell
READYZ_PY='
import json, os, sys, urllib.error, urllib.request
url = "http://127.0.0.1:%s/readyz" % os.environ.get("PORT", "8000")
try:
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
except urllib.error.HTTPError as error:
    sys.exit("GET /readyz answered %d: %s" % (error.code, error.read(300).decode("utf-8", "replace")))
except Exception as error:
    sys.exit("GET /readyz failed: %s" % error)
print(body.get("model_version", ""))
'

check_error=""
for ((attempt = 1; attempt <= attempts; attempt++)); do
    if served="$(kube exec deploy/digit-api -- python -c "$READYZ_PY" 2>"$WORK/exec.err")"; then
        if [[ "$served" == "$EXPECTED_VERSION" ]]; then
            check_error=""
            break
        fi
        check_error="deploy/digit-api serves model_version '$served', but api/models/model.json of this checkout is version '$EXPECTED_VERSION'"
    else
        check_error="readyz of deploy/digit-api failed: $(tail -n 1 "$WORK/exec.err" | grep . || echo "kubectl exec failed")"
    fi
    echo "deploy.sh: check $attempt of $attempts: $check_error" >&2
    if ((attempt < attempts)); then
        sleep "${DEPLOY_CHECK_DELAY:-5}"
    fi
done
[[ -z "$check_error" ]] || fail_and_roll_back "$check_error"

trap - INT TERM
echo "deploy.sh: deployed ${IMAGE_REF["digit-api"]} and ${IMAGE_REF["digit-frontend"]} to namespace $NAMESPACE; serving model $EXPECTED_VERSION"
