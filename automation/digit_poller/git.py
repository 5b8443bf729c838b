"""The poller's dedicated clone: sync, write api/models, commit only that path, push with bounded retries.

REPO_PATH is the poller's own clone, but people do look into it, and runs get killed. So the
poller removes only what it left itself, and refuses, touching nothing, when the clone holds
anyone else's work:

- Before its first change to the clone in a run, it writes a journal (`operation.json` in its
  state folder, inside .git) and removes it only once the clone is clean at the remote's branch
  again. A journal found at the start means a run was killed mid-way: the clone is put back to
  the remote's branch, and the files the interrupted step may have left are removed.
- Its commits carry the trailer `Digit-Poller: model-vN`. Unpushed commits with it are dropped;
  any other local commit, and any change found without a journal, is someone else's: refused.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from digit_api.manifest import write_atomic
from digit_poller import crashpoints

logger = logging.getLogger(__name__)

MODEL_PATH = "api/models"
TRAILER = "Digit-Poller"
JOURNAL_NAME = "operation.json"
# A hung fetch or push must not hold the poller's lock for ever.
GIT_TIMEOUT_SECONDS = 120
# What git needs from the environment, and nothing else (no tokens meant for other tools).
PASSED_ENV = (
    "PATH", "HOME", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND", "XDG_CONFIG_HOME",
    "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
    "GIT_SSL_CAINFO", "SSL_CERT_FILE", "SSL_CERT_DIR",
)  # fmt: skip
# Commands that change the clone, its refs or the remote: each is a crash point, before and during.
CHANGING = frozenset({"fetch", "checkout", "reset", "clean", "add", "commit", "push"})
# How many paths or commits a refusal lists before it says "and N more".
SHOWN = 8


class GitError(RuntimeError):
    pass


class ForeignWork(GitError):
    """The clone holds changes or commits the poller did not make: it refuses and touches nothing."""


@dataclass(frozen=True)
class Identity:
    """Who the poller commits as, so a cron job on a host without any git config can commit."""

    name: str
    email: str


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


class Clone:
    def __init__(self, path: Path, remote: str, branch: str, state_dir: Path, identity: Identity) -> None:
        self.path = Path(path)
        self.remote = remote
        self.branch = branch
        self.state_dir = Path(state_dir)
        self.identity = identity

    @property
    def upstream(self) -> str:
        return f"{self.remote}/{self.branch}"

    @property
    def journal_path(self) -> Path:
        return self.state_dir / JOURNAL_NAME

    # --- running git ---------------------------------------------------------------------------

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = self._run(args)
        done = subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(errors="replace"))
        done.stderr = result.stderr.decode(errors="replace")
        if check and done.returncode != 0:
            raise GitError(f"git {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done

    def _run(self, args: tuple[str, ...]) -> subprocess.CompletedProcess[bytes]:
        env = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
        # Never ask for a password on a terminal: an unattended run must fail, not hang.
        env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C")
        identity = ("-c", f"user.name={self.identity.name}", "-c", f"user.email={self.identity.email}")
        argv = ["git", "-C", str(self.path), *identity, *args]
        changing = args[0] in CHANGING
        if changing:
            crashpoints.reached(f"git {args[0]}")
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        if changing:
            crashpoints.reached(f"git {args[0]} (running)", running=True)
        try:
            stdout, stderr = process.communicate(timeout=GIT_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise GitError(f"git {args[0]} took more than {GIT_TIMEOUT_SECONDS} s") from None
        return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)

    def fetch(self) -> None:
        self.git("fetch", "--quiet", self.remote, self.branch)

    def remote_file(self, path: str) -> bytes | None:
        """A file exactly as the remote branch holds it (after fetch), never the work tree's or the index's."""
        result = self._run(("cat-file", "blob", f"{self.upstream}:{path}"))
        return result.stdout if result.returncode == 0 else None

    def head(self) -> str:
        return self.git("rev-parse", "--verify", "--quiet", "HEAD", check=False).stdout.strip()

    def upstream_commit(self) -> str:
        return self.git("rev-parse", "--verify", f"{self.upstream}^{{commit}}").stdout.strip()

    # --- the journal ---------------------------------------------------------------------------

    def begin(self, operation: str) -> None:
        """Record that the poller is about to change the clone (kept if a journal is already there)."""
        if self.journal_path.exists():
            return
        entry = {"operation": operation, "from": self.head(), "to": self.upstream_commit(), "pid": os.getpid()}
        entry["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.journal_path, (json.dumps(entry) + "\n").encode())

    def settle(self) -> None:
        """Forget the journal, once the clone is clean and at the remote's branch."""
        status = self.git("status", "--porcelain", "--untracked-files=all").stdout.strip()
        if status or self.head() != self.upstream_commit():
            raise GitError(f"{self.path} is not clean at {self.upstream} after the run: the next run puts it back")
        self.journal_path.unlink(missing_ok=True)

    def _journal(self) -> dict | None:
        try:
            entry = json.loads(self.journal_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            entry = {}  # written atomically, so this is damage, not a half-write: recover all the same
        return entry if isinstance(entry, dict) else {}

    # --- getting the clone to the remote's branch ------------------------------------------------

    def clear_stale_locks(self) -> None:
        """Remove git's own lock files: under the poller's lock, any left is from a killed run."""
        git_dir = self.path / ".git"
        candidates = [git_dir / "index.lock", git_dir / "HEAD.lock", git_dir / "packed-refs.lock"]
        for lock in [*candidates, *git_dir.glob("refs/**/*.lock")]:
            if lock.is_file():
                logger.warning("removing %s, left by a run that was killed", lock)
                lock.unlink()

    def sync(self) -> None:
        """Start from the remote's branch: recover what a killed run left, refuse others' work, fast-forward."""
        if not (self.path / ".git").is_dir():
            raise GitError(f"{self.path} is not a git clone (REPO_PATH must be the poller's own clone)")
        self.clear_stale_locks()
        self.fetch()
        journal = self._journal()
        if journal is not None:
            self._recover(journal)
        else:
            self._refuse_foreign_work()
        self.begin("sync")
        # -B: whatever branch or detached HEAD the clone was left on, it is now the remote's branch.
        self.git("checkout", "--quiet", "-B", self.branch, self.upstream)
        self.settle()

    def _recover(self, journal: dict) -> None:
        logger.warning(
            "a run was interrupted during %s (pid %s, %s): putting the clone back to %s",
            journal.get("operation", "an unknown step"),
            journal.get("pid", "?"),
            journal.get("started", "at an unknown time"),
            self.upstream,
        )
        self.git("checkout", "--quiet", "--force", "-B", self.branch, self.upstream)
        untracked = self._untracked()
        if not untracked:
            return
        # Files the interrupted step wrote: those of the commits it moved between, and api/models.
        ours: set[str] = set()
        for commit in {journal.get("from"), journal.get("to")}:
            if isinstance(commit, str) and commit:
                listed = self.git("ls-tree", "-r", "-z", "--name-only", commit, check=False).stdout
                ours.update(filter(None, listed.split("\0")))
        leftover = [p for p in untracked if p in ours or p.startswith(f"{MODEL_PATH}/")]
        foreign = [p for p in untracked if p not in set(leftover)]
        if foreign:
            raise ForeignWork(
                f"{self.path} holds untracked files the poller did not write ({_listing(foreign)}); "
                f"move them out of REPO_PATH (the poller's own clone), then run again"
            )
        for relative in leftover:
            path = self.path / relative
            path.unlink(missing_ok=True)
            for parent in path.parents:
                if parent == self.path or any(parent.iterdir()):
                    break
                parent.rmdir()
        logger.info("removed %d file(s) the interrupted run left", len(leftover))

    def _untracked(self) -> list[str]:
        listed = self.git("ls-files", "--others", "--exclude-standard", "-z").stdout
        return [path for path in listed.split("\0") if path]

    def _refuse_foreign_work(self) -> None:
        """Without a journal, every change and every local commit without the trailer is someone else's."""
        status = self.git("status", "--porcelain", "--untracked-files=all").stdout.splitlines()
        if status:
            paths = [line[3:] for line in status]
            raise ForeignWork(
                f"{self.path} holds changes the poller did not make ({_listing(paths)}). REPO_PATH must be "
                f"the poller's own clone: keep that work elsewhere (git -C {self.path} stash --include-untracked), "
                f"then run again"
            )
        foreign, ours = [], 0
        for sha, trailer, subject in self._unpushed():
            if trailer:
                ours += 1
            else:
                foreign.append(f"{sha[:10]} {subject}")
        if foreign:
            raise ForeignWork(
                f"{self.path} holds {len(foreign)} commit(s) not on {self.upstream} that the poller did not "
                f"make ({_listing(foreign)}): push them, or move them to a branch of their own "
                f"(git -C {self.path} branch keep-my-work && git -C {self.path} reset --hard {self.upstream}), "
                f"then run again"
            )
        if ours:
            logger.info("dropping %d unpushed commit(s) of an earlier run of the poller", ours)

    def _unpushed(self) -> list[tuple[str, str, str]]:
        """(sha, trailer value, subject) of the commits that moving to the remote's branch would drop."""
        current = self.git("symbolic-ref", "--quiet", "--short", "HEAD", check=False).stdout.strip()
        refs = ["HEAD"] if current in ("", self.branch) else []  # another branch keeps its own commits
        if self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{self.branch}", check=False).returncode == 0:
            refs.append(f"refs/heads/{self.branch}")
        if not refs or not self.head():
            return []
        fields = f"%H%x00%(trailers:key={TRAILER},valueonly,separator=%x2C)%x00%s"
        listed = self.git("log", f"--format={fields}", *refs, "--not", self.upstream).stdout
        commits = []
        for line in listed.splitlines():
            sha, trailer, subject = [*line.split("\0"), "", ""][:3]
            commits.append((sha, trailer.strip(), subject))
        return commits

    # --- writing -------------------------------------------------------------------------------

    def restore(self) -> None:
        """Undo whatever this run changed: back to the remote's branch, nothing of ours left in api/models."""
        self.git("checkout", "--quiet", "--force", "-B", self.branch, self.upstream)
        self.git("clean", "-fdq", "--", MODEL_PATH)
        self.settle()

    def commit_models(self, message: str, tag: str) -> bool:
        """Commit api/models only, with the poller's trailer; False when nothing changed there."""
        self.git("add", "--", MODEL_PATH)
        if not self.git("diff", "--cached", "--quiet", "--", MODEL_PATH, check=False).returncode:
            return False
        self.git("commit", "--quiet", "-m", f"{message.rstrip()}\n\n{TRAILER}: {tag}\n", "--", MODEL_PATH)
        return True

    def push(self, attempts: int, redo: Callable[[], bool]) -> bool:
        """Push; when the remote moved meanwhile, start again from it. False if `redo` found nothing to do."""
        for attempt in range(1, attempts + 1):
            result = self.git("push", "--porcelain", self.remote, f"HEAD:refs/heads/{self.branch}", check=False)
            if result.returncode == 0:
                self.fetch()  # the remote-tracking branch now names what the remote holds
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
