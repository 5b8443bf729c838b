"""Run the training pipeline as an Azure ML command job and register its release as a model version.

    digit-azureml show --compute cpu-cluster      # the job definition, as YAML
    digit-azureml submit --compute cpu-cluster    # run it, register mnist-cnn vN

The job runs the same entry point as local training (`digit-train`) on a snapshot of
the repository (the root, minus what `.amlignore` leaves out), in a conda environment
(training/azureml/environment.yml, the pins of training/requirements.txt) on a pinned base image.
Its `release` output is the release folder; `submit` downloads it, checks it, and registers it as
version N of the model, which the poller's `azureml:MODEL_NAME` source reads as release `model-vN`.
N is 1 + the highest version registered (by number, never by date) and is passed to the job
(`--version N`), so the manifest inside the release says the same N as the registry.

Reviewed feedback sets (`--feedback NPZ`, or params.yaml's `feedback:` list) are uploaded as
versioned data assets of type uri_file, named `digit-feedback` (a set already uploaded, known by its
sha256 tag, is reused rather than uploaded again), and passed to the job as inputs, which the job
hands to training as `--feedback`.

The workspace comes from AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZURE_ML_WORKSPACE, the
identity from `DefaultAzureCredential`. Needs the SDK: `pip install -r automation/requirements-azure.txt`.

Exit codes: 0 done; 1 the job or the registration failed; 2 bad arguments or missing variables.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from azure.ai.ml import Input, Output, command
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Command, Data, Environment, Model

from digit_release import azure
from digit_release.manifest import MODEL_NAME, ModelManifest, sha256_file, verify_model_dir
from digit_training import provenance
from digit_training.feedback import set_id
from digit_training.params import ParamsError, feedback_sets, load_params

logger = logging.getLogger("digit_training.azureml")

REPO_ROOT = provenance.REPO_ROOT
CONDA_FILE = REPO_ROOT / "training" / "azureml" / "environment.yml"
DEFAULT_PARAMS = REPO_ROOT / "training" / "params.yaml"
# A tag, not a digest: Microsoft does not republish a dated tag, but a digest would pin harder.
BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20250601.v1"
DATA_CHOICES = ("bundled", "keras")
FEEDBACK_ASSET = "digit-feedback"
OUTPUT = "release"
# The job's working directory is the code snapshot (the repository root); the conda environment
# holds the pinned dependencies, so only the two local packages are installed, without theirs.
INSTALL = "python -m pip install --quiet --no-deps -e ./release -e ./training"

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class JobFailed(RuntimeError):
    """The job did not complete, or its output is not a release that can be registered."""


def build_environment() -> Environment:
    return Environment(
        name="digit-training",
        description="digit_training: training/requirements.txt pins on the AzureML Ubuntu 22.04 CPU image",
        image=BASE_IMAGE,
        conda_file=str(CONDA_FILE),
    )


def build_job(
    params: Path,
    compute: str,
    data: str = "bundled",
    experiment: str = "digit-training",
    code_revision: str | None = None,
    *,
    version: int = 1,
    feedback: tuple[Input, ...] = (),
) -> Command:
    """The command job that trains release `model-v<version>` into its `release` output.

    `feedback`: uri_file inputs of reviewed feedback sets (see `register_feedback`), trained with.
    """
    if data not in DATA_CHOICES:
        raise ValueError(f"data must be one of {', '.join(DATA_CHOICES)} (a local path is not uploaded), got {data!r}")
    if not compute:
        raise ValueError("compute must name a compute cluster of the workspace")
    if version < 1:
        raise ValueError(f"version must be at least 1, got {version}")
    params = Path(params)
    if not params.is_file():
        raise ValueError(f"params file not found: {params}")
    revision = code_revision or provenance.code_revision()
    feedback_inputs = {f"feedback_{i}": item for i, item in enumerate(feedback, 1)}
    # Given as flags, the sets replace params.yaml's own `feedback:` paths, which are not uploaded.
    feedback_flags = "".join(f" --feedback ${{{{inputs.{name}}}}}" for name in feedback_inputs)
    return command(
        code=str(REPO_ROOT),  # the snapshot: .amlignore at the root leaves out .venv, .git, ...
        command=(
            f"{INSTALL} && digit-train --params ${{{{inputs.params}}}} "
            f"--data {data} --out ${{{{outputs.{OUTPUT}}}}} --version {version} --no-report --quiet"
            f"{feedback_flags}"
        ),
        inputs={"params": Input(type=AssetTypes.URI_FILE, path=str(params.resolve())), **feedback_inputs},
        outputs={OUTPUT: Output(type=AssetTypes.URI_FOLDER, mode="upload")},
        environment=build_environment(),
        environment_variables={"CODE_REVISION": revision, "TF_CPP_MIN_LOG_LEVEL": "2"},
        compute=compute,
        experiment_name=experiment,
        display_name=f"train {MODEL_NAME} model-v{version} ({data})",
        description="digit-train: train, evaluate, export and verify one release",
        tags={
            "code_revision": revision,
            "data": data,
            "release_version": str(version),
            **({"feedback": " ".join(str(item.path) for item in feedback)} if feedback else {}),
        },
    )


def local_feedback(paths: list[Path]) -> tuple[Input, ...]:
    """Feedback sets as local-file inputs, for `show` (nothing is uploaded)."""
    return tuple(Input(type=AssetTypes.URI_FILE, path=str(Path(path).resolve())) for path in paths)


def register_feedback(client: Any, paths: list[Path], name: str = FEEDBACK_ASSET) -> tuple[Input, ...]:
    """Upload each feedback set as a version of the uri_file data asset `name`; inputs naming them.

    A set whose sha256 is already registered is not uploaded again: its version is reused, so a
    rerun trains on the very asset the first run did. New versions are numbered 1, 2, ...
    """
    paths = [Path(path) for path in paths]
    for path in paths:
        if not path.is_file():
            raise ValueError(f"feedback set not found: {path}")
    inputs = []
    existing = list(client.data.list(name=name))  # once: the sets uploaded below are added to it
    for path in paths:
        sha256 = sha256_file(path)
        known = [d for d in existing if (getattr(d, "tags", None) or {}).get("sha256") == sha256]
        if known:
            version = str(known[0].version)
            logger.info("feedback set %s is %s version %s already", path, name, version)
        else:
            numbers = [int(v) for d in existing if (v := str(getattr(d, "version", ""))).isdigit()]
            asset = client.data.create_or_update(
                Data(
                    name=name,
                    version=str(max(numbers, default=0) + 1),
                    type=AssetTypes.URI_FILE,
                    path=str(path.resolve()),
                    description=f"reviewed feedback set {set_id(sha256)} (digit-feedback export)",
                    tags={"sha256": sha256, "id": set_id(sha256)},
                )
            )
            existing.append(asset)
            version = str(asset.version)
            logger.info("uploaded feedback set %s as %s version %s", path, name, version)
        inputs.append(Input(type=AssetTypes.URI_FILE, path=f"azureml:{name}:{version}"))
    return tuple(inputs)


def feedback_paths(args: argparse.Namespace) -> list[Path]:
    """--feedback, else the params file's `feedback:` list (relative to that file).

    Params with `fine_tune:` are refused: the job has no input for a base release yet, so it would
    fail on the cluster after the upload; fine-tune with digit-train instead.
    """
    try:
        params = load_params(args.params)
    except ParamsError as exc:
        raise ValueError(str(exc)) from None
    if params.fine_tune is not None:
        raise ValueError(
            f"{args.params}: fine_tune: an Azure ML job cannot fine-tune yet (the base release is not passed to "
            "the job as an input); fine-tune locally with digit-train --fine-tune-from, or train from scratch"
        )
    return list(feedback_sets(params, args.params, args.feedback))


def next_version(client: Any, model_name: str) -> int:
    """1 + the highest numeric version registered under `model_name` (1 if none)."""
    versions = [int(v) for m in client.models.list(name=model_name) if (v := str(getattr(m, "version", ""))).isdigit()]
    return max(versions, default=0) + 1


def _release_folder(root: Path) -> Path:
    try:
        return azure.release_folder(root)
    except azure.AzureSetupError as exc:
        raise JobFailed(f"the job's {OUTPUT} output: {exc}") from None


def _register(client: Any, job_name: str, folder: Path, model_name: str, expected: int) -> str:
    try:
        manifest: ModelManifest = verify_model_dir(folder)
    except ValueError as exc:  # ManifestError
        raise JobFailed(f"job {job_name}: its {OUTPUT} output is not a valid release: {exc}") from exc
    if manifest.version != str(expected):
        raise JobFailed(
            f"job {job_name} trained model-v{manifest.version}, but the next free version of {model_name} is {expected}"
        )
    model = Model(
        path=str(folder),
        name=model_name,
        version=str(expected),
        type=AssetTypes.CUSTOM_MODEL,
        description=f"model-v{expected}: accuracy {manifest.metrics.accuracy:.4f}, Azure ML job {job_name}",
        tags={
            "accuracy": f"{manifest.metrics.accuracy:.6g}",
            "code_revision": manifest.training.code_revision,
            "job": job_name,
        },
    )
    registered = client.models.create_or_update(model)
    return str(getattr(registered, "version", None) or expected)


def submit(client: Any, job: Command, model_name: str = MODEL_NAME, download_path: Path | None = None) -> str:
    """Run `job`, wait for it, download its release and register it; return the registered version."""
    expected = next_version(client, model_name)
    planned = (job.tags or {}).get("release_version")
    if planned != str(expected):
        raise ValueError(
            f"the job trains model-v{planned}, but the next free version of {model_name} is {expected}: "
            f"build it with version={expected}"
        )
    created = client.jobs.create_or_update(job)
    name = created.name
    logger.info("submitted job %s", name)
    client.jobs.stream(name)
    status = client.jobs.get(name).status
    if status != "Completed":
        raise JobFailed(f"job {name} ended with status {status}: nothing registered")
    if download_path is not None:
        download_path = Path(download_path)
        download_path.mkdir(parents=True, exist_ok=True)
        client.jobs.download(name, download_path=str(download_path), output_name=OUTPUT)
        return _register(client, name, _release_folder(download_path), model_name, expected)
    with tempfile.TemporaryDirectory(prefix="digit-training-azureml-") as tmp:
        client.jobs.download(name, download_path=tmp, output_name=OUTPUT)
        # create_or_update uploads the folder before it returns, so the temporary copy may go then.
        return _register(client, name, _release_folder(Path(tmp)), model_name, expected)


def workspace_client() -> Any:
    """MLClient for the workspace named by the AZURE_* variables; SystemExit(2) naming missing ones."""
    try:
        subscription, group, workspace = azure.workspace_from_env()
    except azure.AzureSetupError as exc:
        print(f"{exc} to train in", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    from azure.ai.ml import MLClient  # noqa: PLC0415
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415

    return MLClient(
        credential=DefaultAzureCredential(),
        subscription_id=subscription,
        resource_group_name=group,
        workspace_name=workspace,
    )


def job_yaml(job: Command) -> str:
    import yaml  # noqa: PLC0415

    return yaml.safe_dump(job._to_dict(), sort_keys=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="digit-azureml",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    for action, text in (("submit", "run the job and register its release"), ("show", "print the job as YAML")):
        p = sub.add_parser(action, help=text)
        p.add_argument("--compute", required=True, help="compute cluster of the workspace")
        p.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="YAML parameters (default: %(default)s)")
        p.add_argument("--data", choices=DATA_CHOICES, default="bundled", help="(default: %(default)s)")
        p.add_argument("--experiment", default="digit-training", help="(default: %(default)s)")
        p.add_argument("--model-name", default=MODEL_NAME, help="registered model name (default: %(default)s)")
        p.add_argument(
            "--feedback",
            type=Path,
            action="append",
            metavar="NPZ",
            help="reviewed feedback set to train with, uploaded as a data asset; repeatable "
            "(default: params.yaml's feedback: list)",
        )
        if action == "show":
            p.add_argument("--version", type=int, default=1, help="N of model-vN for the shown job (default: 1)")
        else:
            p.add_argument("--out", type=Path, help="also keep the job's release folder here (to publish it)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sets = feedback_paths(args)
        if args.action == "show":
            job = build_job(
                args.params,
                args.compute,
                args.data,
                args.experiment,
                version=args.version,
                feedback=local_feedback(sets),
            )
            print(job_yaml(job), end="")
            return EXIT_OK
        client = workspace_client()
        version = next_version(client, args.model_name)
        job = build_job(
            args.params,
            args.compute,
            args.data,
            args.experiment,
            version=version,
            feedback=register_feedback(client, sets),
        )
    except ValueError as exc:
        logger.error("%s", exc)
        return EXIT_BAD_INPUT
    try:
        registered = submit(client, job, args.model_name, download_path=args.out)
    except JobFailed as exc:
        logger.error("%s", exc)
        return EXIT_FAILED
    print(f"registered {args.model_name} version {registered} (release model-v{registered})")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
