"""The Azure ML job definition (built offline) and its submit/register flow against a stand-in MLClient.

The stand-in keeps to the azure-ai-ml SDK v2 signatures: `jobs.create_or_update(job)`,
`jobs.stream(name)`, `jobs.get(name)`, `jobs.download(name, *, download_path, output_name)` (which
writes `download_path/named-outputs/<output>/`), `models.list(name)`, `models.create_or_update(model)`
and `models.download(name, version, download_path)`. One object holds jobs and registry, so a model
registered by `submit` is what the poller's `azureml:` source then lists and downloads. No network.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from digit_testing import releases

pytest.importorskip("azure.ai.ml", reason="the Azure ML SDK: pip install -r automation/requirements-azure.txt")

from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Command, Data, Model

from digit_release.azure import WORKSPACE_VARIABLES
from digit_release.manifest import MANIFEST_NAME, TFLITE_NAME, TrainingRunner, read_manifest, verify_model_dir
from digit_training import azureml

REPO = Path(__file__).resolve().parents[2]
PARAMS = REPO / "training" / "params.yaml"
MODEL = "mnist-cnn"
# The SDK's schemas use marshmallow's deprecated `context`: not this project's to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The `context` parameter is deprecated")


def pinned_requirements(path: Path) -> list[str]:
    """The `name==version` lines of a requirements file, following the release package and its extras."""
    found = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("digit-release"):
            release = REPO / "release"
            extras = line.partition("[")[2].rstrip("]").split(",") if "[" in line else []
            for name in ["requirements.txt", *(f"requirements-{extra.strip()}.txt" for extra in extras if extra)]:
                found += pinned_requirements(release / name)
        elif line:
            found.append(line)
    return found


# --- the job definition ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def job() -> Command:
    return azureml.build_job(PARAMS, "cpu-cluster", code_revision="abc123", version=3)


def test_job_runs_the_local_training_entry_point(job: Command) -> None:
    install, run = job.command.split(" && ")
    # The local packages from the code snapshot, without dependencies: the conda environment pins those.
    assert install.split()[:6] == ["python", "-m", "pip", "install", "--quiet", "--no-deps"]
    assert {"./release", "./training"} <= set(install.split())
    words = run.split()
    assert words[0] == "digit-train"  # the console script of digit_training.__main__:main, as `make train` runs
    options = dict(zip(words[1::2], words[2::2], strict=False))
    assert options["--params"] == "${{inputs.params}}"
    assert options["--out"] == "${{outputs.release}}"
    assert options["--data"] == "bundled"
    assert options["--version"] == "3"
    assert {"--no-report", "--quiet"} <= set(words)


def test_job_inputs_outputs_compute_and_names(job: Command) -> None:
    assert job.inputs["params"].type == AssetTypes.URI_FILE
    assert Path(job.inputs["params"].path) == PARAMS
    assert job.outputs["release"].type == AssetTypes.URI_FOLDER
    assert job.outputs["release"].mode in {"rw_mount", "upload"}
    assert job.compute == "cpu-cluster"
    assert job.experiment_name == "digit-training"
    assert job.display_name
    assert job.tags["code_revision"] == "abc123"
    assert job.tags["release_version"] == "3"


def test_job_environment_variables(job: Command) -> None:
    env = job.environment_variables
    assert env["CODE_REVISION"] == "abc123"
    assert "PYTHONPATH" not in env  # the packages are installed from the snapshot: no hand-set path
    assert (REPO / "training" / "pyproject.toml").is_file()
    assert (REPO / "release" / "pyproject.toml").is_file()


def test_job_environment_has_the_training_pins(job: Command) -> None:
    environment = job.environment
    assert re.fullmatch(r"mcr\.microsoft\.com/azureml/[\w.-]+:\d{8}\.v\d+", environment.image), environment.image
    conda = yaml.safe_load((REPO / "training" / "azureml" / "environment.yml").read_text())
    assert environment.conda_file == conda
    assert "python=3.11" in conda["dependencies"]
    pip = next(dep["pip"] for dep in conda["dependencies"] if isinstance(dep, dict))
    assert sorted(pip) == sorted(pinned_requirements(REPO / "training" / "requirements.txt"))
    assert all("==" in requirement for requirement in pip)


def test_code_snapshot_is_the_repository_minus_amlignore(job: Command) -> None:
    assert Path(job.code) == REPO
    ignored = {line.strip().strip("/") for line in (REPO / ".amlignore").read_text().splitlines()}
    expected = {".venv", ".git", "build", "node_modules", "report-images", "tests", "frontend", "kubernetes"}
    assert expected <= ignored
    assert not {"training", "release"} & ignored


def test_job_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data must be one of"):
        azureml.build_job(PARAMS, "c", data="/some/local.npz")
    with pytest.raises(ValueError, match="params file not found"):
        azureml.build_job(tmp_path / "missing.yaml", "c")
    assert "--data keras" in azureml.build_job(PARAMS, "c", data="keras", code_revision="x").command


def test_show_prints_the_job_as_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert azureml.main(["show", "--compute", "cpu-cluster"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["compute"].endswith("cpu-cluster")
    assert "&& digit-train --params ${{inputs.params}}" in shown["component"]["command"]


def test_submit_without_workspace_variables_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in WORKSPACE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_ML_WORKSPACE", "ws")
    with pytest.raises(SystemExit) as exit_info:
        azureml.main(["submit", "--compute", "c"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "AZURE_SUBSCRIPTION_ID" in err
    assert "AZURE_RESOURCE_GROUP" in err
    assert "AZURE_ML_WORKSPACE" not in err


# --- the stand-in MLClient ---------------------------------------------------------------------


class Jobs:
    def __init__(self, status: str = "Completed", tamper: bool = False) -> None:
        self.status = status
        self.tamper = tamper
        self.submitted: dict[str, Command] = {}
        self.streamed: list[str] = []

    def create_or_update(self, job, *, description=None, compute=None, tags=None, experiment_name=None, **kwargs):
        name = f"job-{len(self.submitted) + 1}"
        self.submitted[name] = job
        return SimpleNamespace(name=name, status="Starting")

    def stream(self, name: str) -> None:
        self.streamed.append(name)

    def get(self, name: str):
        return SimpleNamespace(name=name, status=self.status)

    def download(self, name: str, *, download_path=".", output_name=None, all=False) -> None:
        job = self.submitted[name]
        folder = Path(download_path) / "named-outputs" / output_name
        shipped = read_manifest(releases.SHIPPED)
        training = shipped.training.model_copy(
            update={
                "code_revision": job.environment_variables["CODE_REVISION"],
                "runner": TrainingRunner(kind="azureml", job_id=name),
            }
        )
        version = int(job.tags["release_version"])
        releases.write_release(folder, version, training=training)
        if self.tamper:
            (folder / TFLITE_NAME).write_bytes(b"not the exported model")


class Models:
    def __init__(self, registry: Path, versions: tuple[str, ...] = ()) -> None:
        self.registry = registry
        self.registered: dict[tuple[str, str], Model] = {}
        for version in versions:
            folder = releases.write_release(
                registry / MODEL / version / "release", int(version) if version.isdigit() else 1
            )
            self.registered[(MODEL, version)] = Model(name=MODEL, version=version, path=str(folder))

    def list(self, name=None, stage=None, *, list_view_type="ActiveOnly"):
        return iter([model for (model_name, _), model in self.registered.items() if name in (None, model_name)])

    def create_or_update(self, model: Model) -> Model:
        assert model.version is not None
        assert (model.name, model.version) not in self.registered, "version already registered"
        source = Path(model.path)
        # The SDK uploads the folder here, so the caller's (temporary) copy may go afterwards.
        stored = self.registry / model.name / model.version / source.name
        shutil.copytree(source, stored)
        self.registered[(model.name, model.version)] = model
        self.uploaded_from = source
        return Model(name=model.name, version=model.version, path=str(stored), tags=model.tags, type=model.type)

    def download(self, name: str, version: str, download_path=".") -> None:
        stored = self.registry / name / version
        (folder,) = stored.iterdir()
        shutil.copytree(folder, Path(download_path) / name / folder.name)


class DataAssets:
    """`data.list(name)`, `data.create_or_update(data)`: the SDK uploads a local `path` and keeps it."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.registered: dict[tuple[str, str], Data] = {}

    def list(self, name=None, *, list_view_type="ActiveOnly"):
        return iter([data for (data_name, _), data in self.registered.items() if name in (None, data_name)])

    def create_or_update(self, data: Data) -> Data:
        assert data.version is not None
        assert (data.name, data.version) not in self.registered, "version already registered"
        source = Path(data.path)
        assert source.is_file(), "a uri_file asset is one local file, uploaded here"
        stored = self.store / data.name / data.version / source.name
        stored.parent.mkdir(parents=True)
        shutil.copyfile(source, stored)
        registered = Data(name=data.name, version=data.version, type=data.type, path=str(stored), tags=data.tags)
        self.registered[(data.name, data.version)] = registered
        return registered


class StandInMLClient:
    def __init__(self, registry: Path, versions: tuple[str, ...] = (), status: str = "Completed", tamper=False) -> None:
        self.jobs = Jobs(status, tamper)
        self.models = Models(registry, versions)
        self.data = DataAssets(registry / "data")


# --- submit and register ------------------------------------------------------------------------


def test_next_version_is_by_number_not_by_order(tmp_path: Path) -> None:
    client = StandInMLClient(tmp_path, versions=("10", "9", "2", "draft"))
    assert azureml.next_version(client, MODEL) == 11
    assert azureml.next_version(client, "other") == 1


def test_submit_registers_the_release_as_the_next_version(tmp_path: Path) -> None:
    client = StandInMLClient(tmp_path / "registry", versions=("1", "2"))
    job = azureml.build_job(PARAMS, "cpu-cluster", code_revision="abc123", version=3)
    kept = tmp_path / "download"

    assert azureml.submit(client, job, MODEL, download_path=kept) == "3"

    assert client.jobs.streamed == ["job-1"]
    model = client.models.registered[(MODEL, "3")]
    assert model.type == AssetTypes.CUSTOM_MODEL
    assert Path(model.path) == kept / "named-outputs" / "release"
    assert model.tags["code_revision"] == "abc123"
    assert model.tags["job"] == "job-1"
    shipped = read_manifest(releases.SHIPPED)
    assert float(model.tags["accuracy"]) == pytest.approx(shipped.metrics.accuracy)
    manifest = verify_model_dir(client.models.registry / MODEL / "3" / "release")
    assert manifest.version == "3"
    assert manifest.training.runner.job_id == "job-1"


def test_submit_in_a_temporary_folder(tmp_path: Path) -> None:
    client = StandInMLClient(tmp_path)
    job = azureml.build_job(PARAMS, "c", code_revision="abc123")
    assert azureml.submit(client, job) == "1"
    assert not client.models.uploaded_from.exists()  # the temporary download is gone, the upload stays
    assert (tmp_path / MODEL / "1" / "release" / MANIFEST_NAME).is_file()


def test_a_failed_job_raises_and_registers_nothing(tmp_path: Path) -> None:
    client = StandInMLClient(tmp_path, versions=("1",), status="Failed")
    job = azureml.build_job(PARAMS, "c", code_revision="abc123", version=2)
    with pytest.raises(azureml.JobFailed, match="status Failed"):
        azureml.submit(client, job)
    assert list(client.models.registered) == [(MODEL, "1")]


def test_an_invalid_release_is_not_registered(tmp_path: Path) -> None:
    client = StandInMLClient(tmp_path, tamper=True)
    job = azureml.build_job(PARAMS, "c", code_revision="abc123")
    with pytest.raises(azureml.JobFailed, match="not a valid release"):
        azureml.submit(client, job)
    assert client.models.registered == {}


def test_a_job_for_a_taken_version_is_not_submitted(tmp_path: Path) -> None:
    client = StandInMLClient(tmp_path, versions=("1", "2"))
    job = azureml.build_job(PARAMS, "c", code_revision="abc123", version=2)
    with pytest.raises(ValueError, match="next free version of mnist-cnn is 3"):
        azureml.submit(client, job)
    assert client.jobs.submitted == {}


def test_the_poller_reads_what_submit_registered(tmp_path: Path) -> None:
    from digit_poller.sources.azureml import AzureMLSource

    client = StandInMLClient(tmp_path / "registry", versions=("1",))
    job = azureml.build_job(PARAMS, "c", code_revision="abc123", version=2)
    assert azureml.submit(client, job) == "2"

    source = AzureMLSource(MODEL, client=client)
    listed = source.releases()
    assert [release.tag for release in listed] == ["model-v2", "model-v1"]
    dest = tmp_path / "poller"
    dest.mkdir()
    source.download(listed[0], dest)
    manifest = verify_model_dir(dest)
    assert manifest.version == "2"
    assert manifest.training.code_revision == "abc123"


# --- feedback sets as data assets ---------------------------------------------------------------


def feedback_set(path: Path, seed: int) -> Path:
    """A small feedback.npz in the Keras layout (what python -m digit_training.feedback export writes)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (8, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 8, dtype=np.uint8),
        x_test=rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 2, dtype=np.uint8),
    )
    return path


def test_feedback_sets_become_versioned_uri_file_assets_passed_to_the_job(tmp_path: Path) -> None:
    from digit_release.manifest import sha256_file

    client = StandInMLClient(tmp_path / "registry")
    first = feedback_set(tmp_path / "a" / "feedback.npz", 1)
    [given] = azureml.register_feedback(client, [first])
    asset = client.data.registered[("digit-feedback", "1")]
    assert asset.type == AssetTypes.URI_FILE
    assert asset.tags["sha256"] == sha256_file(first)
    assert asset.tags["id"] == f"feedback-{sha256_file(first)[:12]}"
    assert Path(asset.path).read_bytes() == first.read_bytes()  # uploaded, byte for byte
    assert (given.type, given.path) == (AssetTypes.URI_FILE, "azureml:digit-feedback:1")

    job = azureml.build_job(PARAMS, "cpu-cluster", code_revision="abc123", version=1, feedback=(given,))
    assert job.inputs["feedback_1"].type == AssetTypes.URI_FILE
    assert job.inputs["feedback_1"].path == "azureml:digit-feedback:1"
    words = job.command.split()
    assert words[words.index("--feedback") + 1] == "${{inputs.feedback_1}}"
    assert job.tags["feedback"] == "azureml:digit-feedback:1"
    assert azureml.submit(client, job) == "1"
    assert client.jobs.submitted["job-1"].inputs["feedback_1"].path == "azureml:digit-feedback:1"


def test_a_set_already_uploaded_is_reused_and_a_new_one_is_the_next_version(tmp_path: Path) -> None:
    client = StandInMLClient(tmp_path / "registry")
    first = feedback_set(tmp_path / "a" / "feedback.npz", 1)
    second = feedback_set(tmp_path / "b" / "feedback.npz", 2)
    assert [i.path for i in azureml.register_feedback(client, [first])] == ["azureml:digit-feedback:1"]
    again = azureml.register_feedback(client, [first, second])
    assert [i.path for i in again] == ["azureml:digit-feedback:1", "azureml:digit-feedback:2"]
    assert sorted(client.data.registered) == [("digit-feedback", "1"), ("digit-feedback", "2")]
    with pytest.raises(ValueError, match="feedback set not found"):
        azureml.register_feedback(client, [tmp_path / "missing.npz"])


def test_submit_from_the_command_line_uploads_the_feedback_set(tmp_path: Path, monkeypatch) -> None:
    client = StandInMLClient(tmp_path / "registry")
    monkeypatch.setattr(azureml, "workspace_client", lambda: client)
    path = feedback_set(tmp_path / "set" / "feedback.npz", 3)
    assert azureml.main(["submit", "--compute", "c", "--feedback", str(path)]) == 0
    job = client.jobs.submitted["job-1"]
    assert "--feedback ${{inputs.feedback_1}}" in job.command
    assert job.inputs["feedback_1"].path == "azureml:digit-feedback:1"
    assert ("digit-feedback", "1") in client.data.registered


def test_show_lists_params_feedback_sets_as_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = feedback_set(tmp_path / "sets" / "feedback.npz", 4)
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.read_text() + "feedback: [sets/feedback.npz]\n")
    assert azureml.main(["show", "--compute", "c", "--params", str(params)]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert "--feedback ${{inputs.feedback_1}}" in shown["component"]["command"]
    # The SDK's YAML writes a local file as "azureml:<path>"; submit uploads a data asset instead.
    assert Path(shown["inputs"]["feedback_1"]["path"].removeprefix("azureml:")) == path.resolve()


def test_params_that_fine_tune_are_refused_before_anything_is_uploaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The job has no input for a base release: refused at once, not after an upload and a failed job."""
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.read_text() + "fine_tune: {base: ../build/model}\n")
    assert azureml.main(["show", "--compute", "c", "--params", str(params)]) == 2
    assert "fine_tune: an Azure ML job cannot fine-tune yet" in caplog.text
