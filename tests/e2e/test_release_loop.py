"""The whole loop on one machine: train a model, publish it as a release, the poller brings it into
the repository and pushes, and a running API serves it.

Real training (a short run), the real publisher and poller against the local GitHub Releases
stand-in, real git (a bare remote), the real API with hot reload.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from digit_testing import github_server as github
from digit_testing import releases
from digit_testing.processes import running_api

TOKEN = "loop-test-token"  # noqa: S105  (the stand-in's)
QUICK_PARAMS = "epochs: 3\nbatch_size: 64\nlearning_rate: 0.002\nseed: 3\n"


@pytest.mark.slow
def test_train_publish_poll_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from digit_poller.__main__ import main as poll
    from digit_training.__main__ import main as train
    from digit_training.publish import main as publish

    for key, value in releases.IDENTITY.items():
        monkeypatch.setenv(key, value)
    remote, clone = releases.make_world(tmp_path / "world")
    with running_api(clone / "api" / "models", tmp_path, {"RELOAD_INTERVAL": "0.2"}) as api:
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
        api.wait_for_version("2", timeout=15)
        answer = httpx.post(f"{api.url}/predict", json={"pixels": [0] * 784}).json()
        assert answer["model_version"] == "2"
