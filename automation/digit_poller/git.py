"""The poller's dedicated clone: sync, write api/models, commit only that path, push with bounded retries."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

MODEL_PATH = "api/models"
# A hung fetch or push must not hold the poller's lock for ever.
GIT_TIMEOUT_SECONDS = 120
# What git needs from the environment, and nothing else (no tokens meant for other tools).
PASSED_ENV = (
    "PATH", "HOME", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND", "XDG_CONFIG_HOME",
    "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
    "GIT_SSL_CAINFO", "SSL_CERT_FILE", "SSL_CERT_DIR",
)  # fmt: skip


class GitError(RuntimeError):
    pass


class Clone:
    def __init__(self, path: Path, remote: str, branch: str) -> None:
        self.path = Path(path)
        self.remote = remote
        self.branch = branch

    @property
    def upstream(self) -> str:
        return f"{self.remote}/{self.branch}"

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
        # Never ask for a password on a terminal: an unattended run must fail, not hang.
        env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C")
        try:
            result = subprocess.run(
                ["git", "-C", str(self.path), *args],
                capture_output=True,
                text=True,
                check=False,
                env=env,
                timeout=GIT_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            raise GitError(f"git {args[0]} took more than {GIT_TIMEOUT_SECONDS} s") from None
        if check and result.returncode != 0:
            raise GitError(f"git {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def fetch(self) -> None:
        self.git("fetch", "--quiet", self.remote, self.branch)

    def remote_file(self, path: str) -> bytes | None:
        """A file as the remote branch holds it (after fetch), without touching the work tree."""
        result = self.git("show", f"{self.upstream}:{path}", check=False)
        return result.stdout.encode() if result.returncode == 0 else None

    def restore_models(self) -> None:
        """Undo anything uncommitted under api/models (what a run that died part-way may have left)."""
        self.git("checkout", "--", MODEL_PATH)
        self.git("clean", "-fdq", "--", MODEL_PATH)

    def clear_stale_locks(self) -> None:
        """Remove git's own lock files: under the poller's lock, any left is from a killed run."""
        git_dir = self.path / ".git"
        for lock in [git_dir / "index.lock", git_dir / "HEAD.lock", *git_dir.glob("refs/**/*.lock")]:
            if lock.is_file():
                logger.warning("removing %s, left by a run that was killed", lock)
                lock.unlink()

    def sync(self) -> None:
        """Start from the remote's branch: refuse a clone used for other work, then fetch and fast-forward."""
        if not (self.path / ".git").exists():
            raise GitError(f"{self.path} is not a git clone (REPO_PATH must be the poller's own clone)")
        self.clear_stale_locks()
        # Checked before anything is cleaned: someone's work outside api/models is never touched.
        elsewhere = self.git("status", "--porcelain", "--", ".", f":!{MODEL_PATH}").stdout.strip()
        if elsewhere:
            raise GitError(f"{self.path} has changes outside {MODEL_PATH}: REPO_PATH must be the poller's own clone")
        self.restore_models()
        self.fetch()
        if self.git("rev-parse", "--abbrev-ref", "HEAD").stdout.strip() == self.branch:
            self.drop_unpushed()
        # -B: whatever branch or detached HEAD the clone was left on, it is now the remote's branch.
        self.git("checkout", "--quiet", "-B", self.branch, self.upstream)

    def drop_unpushed(self) -> None:
        """Forget local commits the remote does not have (a run that died between commit and push)."""
        ahead = int(self.git("rev-list", "--count", f"{self.upstream}..HEAD").stdout.strip() or 0)
        if ahead:
            logger.warning("dropping %d unpushed commit(s)", ahead)
            self.git("reset", "--quiet", "--hard", self.upstream)

    def commit_models(self, message: str) -> bool:
        """Commit api/models only; False when nothing changed there."""
        self.git("add", "--", MODEL_PATH)
        if not self.git("diff", "--cached", "--quiet", "--", MODEL_PATH, check=False).returncode:
            return False
        self.git("commit", "--quiet", "-m", message, "--", MODEL_PATH)
        return True

    def push(self, attempts: int, redo: Callable[[], bool]) -> bool:
        """Push; when the remote moved meanwhile, start again from it. False if `redo` found nothing to do."""
        for attempt in range(1, attempts + 1):
            result = self.git("push", "--porcelain", self.remote, f"HEAD:refs/heads/{self.branch}", check=False)
            if result.returncode == 0:
                return True
            # Only "the remote has commits we lack" is worth another try; a hook's refusal is final.
            moved = any(
                line.startswith("!") and ("fetch first" in line or "non-fast-forward" in line)
                for line in result.stdout.splitlines()
            )
            if not moved or attempt == attempts:
                detail = (result.stdout + result.stderr).strip()
                raise GitError(f"git push failed (attempt {attempt} of {attempts}): {detail}")
            logger.warning("push rejected, the remote moved: starting again from it (%d of %d)", attempt, attempts)
            self.fetch()
            self.git("reset", "--quiet", "--hard", self.upstream)
            if not redo():
                return False
        return False
