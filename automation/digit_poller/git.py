"""The poller's dedicated clone: sync, write api/models, commit only that path, push with bounded retries."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

logger = logging.getLogger(__name__)

MODEL_PATH = "api/models"


class GitError(RuntimeError):
    pass


class Clone:
    def __init__(self, path: Path, remote: str, branch: str) -> None:
        self.path = Path(path)
        self.remote = remote
        self.branch = branch

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["git", "-C", str(self.path), *args],
            capture_output=True,
            text=True,
            check=False,
            # Never ask for a password on a terminal: an unattended run must fail, not hang.
            env={"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **_passthrough_env()},
        )
        if check and result.returncode != 0:
            raise GitError(f"git {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def restore_models(self) -> None:
        """Undo anything uncommitted under api/models (what a run that died part-way may have left)."""
        self.git("checkout", "--", MODEL_PATH)
        self.git("clean", "-fdq", "--", MODEL_PATH)

    def is_clean(self) -> bool:
        return not self.git("status", "--porcelain").stdout.strip()

    def sync(self) -> None:
        """Start from the remote's branch: fetch, then fast-forward (a clone that diverged is an error)."""
        if not (self.path / ".git").exists():
            raise GitError(f"{self.path} is not a git clone (REPO_PATH must be the poller's own clone)")
        self.restore_models()
        if not self.is_clean():
            raise GitError(f"{self.path} has changes outside {MODEL_PATH}: the poller's clone must be its own")
        self.git("fetch", "--quiet", self.remote, self.branch)
        self.git("checkout", "--quiet", self.branch)
        self.drop_unpushed()
        self.git("merge", "--ff-only", "--quiet", f"{self.remote}/{self.branch}")

    def drop_unpushed(self) -> None:
        """Forget local commits the remote does not have (a run that died between commit and push)."""
        upstream = f"{self.remote}/{self.branch}"
        ahead = int(self.git("rev-list", "--count", f"{upstream}..HEAD").stdout.strip() or 0)
        if ahead:
            logger.warning("dropping %d unpushed commit(s) left by an earlier run", ahead)
            self.git("reset", "--quiet", "--hard", upstream)

    def commit_models(self, message: str) -> bool:
        """Commit api/models only; False when nothing changed there."""
        self.git("add", "--", MODEL_PATH)
        if not self.git("diff", "--cached", "--quiet", "--", MODEL_PATH, check=False).returncode:
            return False
        self.git("commit", "--quiet", "-m", message, "--", MODEL_PATH)
        return True

    def push(self, attempts: int, redo: callable) -> None:
        """Push; when the remote moved meanwhile, start again from it (`redo` re-applies the change)."""
        for attempt in range(1, attempts + 1):
            result = self.git("push", "--quiet", self.remote, f"HEAD:{self.branch}", check=False)
            if result.returncode == 0:
                return
            rejected = any(word in result.stderr for word in ("rejected", "non-fast-forward", "fetch first"))
            if not rejected or attempt == attempts:
                raise GitError(f"git push failed (attempt {attempt} of {attempts}): {result.stderr.strip()}")
            logger.warning("push rejected, the remote moved: fetching and trying again (%d of %d)", attempt, attempts)
            # Our change is "api/models becomes this release": re-applied on the new remote head
            # rather than rebased, so a concurrent change of the same files cannot conflict.
            self.git("fetch", "--quiet", self.remote, self.branch)
            self.git("reset", "--quiet", "--hard", f"{self.remote}/{self.branch}")
            if not redo():
                return  # the remote already holds this model


def _passthrough_env() -> dict[str, str]:
    import os  # noqa: PLC0415

    keep = ("PATH", "HOME", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL",
            "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "XDG_CONFIG_HOME")  # fmt: skip
    return {key: os.environ[key] for key in keep if key in os.environ}
