"""The whole loop on one machine: train a model, publish it as a release, the poller brings it into
the repository and pushes, and a running API serves it.

Real training (a short run), the real publisher and poller against the local GitHub Releases
stand-in, real git (a bare remote), the real API with hot reload.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from tooling import automation_test_module

from .conftest import start_api
from .stack import stop

TOKEN = "loop-test-token"  # noqa: S105  (the stand-in's)
QUICK_PARAMS = "epochs: 3\nbatch_size: 64\nlearning_rate: 0.002\nseed: 3\n"


@pytest.mark.slow
def test_train_publish_poll_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from digit_poller.__main__ import main as poll
    from digit_training.__main__ import main as train
    from digit_training.publish import main as publish

    releases, github = automation_test_module("releases"), automation_test_module("github_server")
    for key, value in releases.IDENTITY.items():
        monkeypatch.setenv(key, value)
    remote, clone = releases.make_world(tmp_path / "world")
    api = start_api(tmp_path, MODEL_DIR=str(clone / "api" / "models"), RELOAD_INTERVAL="0.2")
    try:
        # 1. Train (a short run: the gates below are set for it).
        (tmp_path / "params.yaml").write_text(QUICK_PARAMS)
        release = tmp_path / "trained"
        assert train(["--params", str(tmp_path / "params.yaml"), "--out", str(release), "--no-report", "--quiet"]) == 0

        with github.GitHubServer() as server:
            server.require_token = TOKEN
            monkeypatch.setenv("GITHUB_API_URL", server.api_url)
            monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
            server.add_release("model-v1", {}, draft=True)  # v1 is what the repository ships
            # 2. Publish: the gate passes, the release is model-v2.
            gate = ["--min-accuracy", "0.9", "--tolerance", "0.1"]
            assert publish([str(release), "--repo", server.repo, *gate]) == 0
            assert ("model-v2", False, False) in server.release_tags()  # (tag, draft, prerelease): published
            # 3. Poll: checked, committed, pushed.
            monkeypatch.setenv("MODEL_SOURCE", f"github:{server.repo}")
            monkeypatch.setenv("REPO_PATH", str(clone))
            monkeypatch.setenv("MIN_ACCURACY", "0.9")
            monkeypatch.setenv("ACCURACY_TOLERANCE", "0.1")
            assert poll(["--once"]) == 0
        assert '"version": "2"' in releases.git(remote, "show", "main:api/models/model.json")

        # 4. The running API picks the pushed model up.
        deadline = time.monotonic() + 15
        while httpx.get(f"{api.url}/readyz").json().get("model_version") != "2":
            assert time.monotonic() < deadline, "the API never served model-v2"
            time.sleep(0.1)
        answer = httpx.post(f"{api.url}/predict", json={"pixels": [0] * 784}).json()
        assert answer["model_version"] == "2"
    finally:
        stop(api.process)
