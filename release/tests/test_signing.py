"""The key tool: generate a pair, sign a release's manifest, verify it, as the poller will."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from digit_release import signing
from digit_testing.releases import write_release


def test_generate_sign_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "release-key.pem"
    assert signing.main(["generate", "--private-key", str(key)]) == 0
    public = capsys.readouterr().out.strip()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert signing.main(["generate", "--private-key", str(key)]) == 1  # never overwrites a key
    release = write_release(tmp_path / "model-v2", 2)
    assert signing.main(["sign", str(release), "--private-key", str(key)]) == 0
    assert signing.main(["verify", str(release), "--public-key", public]) == 0
    # What the poller does with MODEL_PUBLIC_KEY:
    signing.verify(
        (release / "model.json").read_bytes(),
        (release / signing.SIGNATURE_NAME).read_text(),
        signing.load_public_key(public),
    )


def test_a_changed_manifest_or_another_key_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, other = tmp_path / "a.pem", tmp_path / "b.pem"
    signing.main(["generate", "--private-key", str(key)])
    signing.main(["generate", "--private-key", str(other)])
    public_a, public_b = capsys.readouterr().out.split()
    release = write_release(tmp_path / "model-v2", 2)
    signing.main(["sign", str(release), "--private-key", str(key)])
    assert signing.main(["verify", str(release), "--public-key", public_b]) == 1
    (release / "model.json").write_text((release / "model.json").read_text().replace('"2"', '"3"', 1))
    assert signing.main(["verify", str(release), "--public-key", public_a]) == 1
    assert "not a valid signature" in capsys.readouterr().err
