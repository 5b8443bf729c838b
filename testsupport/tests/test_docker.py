"""digit_testing.docker and .images on a real engine: the cleanup removes this run's things and no one else's,
and the search for the build secret's certificates finds one that was written into an image."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from digit_testing.docker import Engine
from digit_testing.images import ProjectImages, held_certificates
from digit_testing.standins import Bases

pytestmark = pytest.mark.docker


def test_cleanup_removes_what_the_run_labelled_and_nothing_else(docker_engine: Engine, standin_bases: Bases) -> None:
    run = replace(docker_engine, run_id=f"{docker_engine.run_id}-cleanup")
    python = standin_bases.substitute("python:3.11.14-slim-bookworm")
    other = f"digit-unlabelled-{run.run_id}"
    run("network", "create", "--label", run.label, f"n-{run.run_id}")
    run("volume", "create", "--label", run.label, f"v-{run.run_id}")
    run("create", "--label", run.label, python)
    run("volume", "create", other)  # not this run's: stays
    try:
        assert len(run.leftovers()) == 3
        assert run.cleanup() == []
        assert run.leftovers() == []
        assert run("volume", "inspect", other, check=False).returncode == 0
    finally:
        run("volume", "rm", other, check=False)


def test_a_certificate_written_into_an_image_is_found(
    docker_engine: Engine, standin_bases: Bases, project_images: ProjectImages, tmp_path: Path
) -> None:
    """The check the images pass must be able to fail: an image that copies the secret into a layer."""
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE\nFROM ${BASE}\nRUN --mount=type=secret,id=pip-ca cp /run/secrets/pip-ca /usr/local/share/leaked.pem\n"
    )
    tag = f"digit-leaky:{docker_engine.run_id}"
    docker_engine.build(
        tag, tmp_path / "Dockerfile", context=tmp_path,
        build_args={"BASE": standin_bases.substitute("python:3.11.14-slim-bookworm")},
        secret=project_images.secret.bundle,
        # BuildKit's cache does not key on a secret's content: a cached layer holds an earlier run's canary.
        no_cache=True,
    )  # fmt: skip
    found = held_certificates(docker_engine, tag, project_images.secret)
    assert any(line.startswith("canary") for line in found), found
