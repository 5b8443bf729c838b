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

import contextlib
import json
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digit_poller import crashpoints
from digit_release.manifest import SERVED_PATH, write_atomic

logger = logging.getLogger(__name__)

MODEL_PATH = SERVED_PATH
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
class LocalCommit:
    sha: str
    subject: str
    ours: bool  # carries the poller's trailer
    published: bool  # the remote's branch once held it (a force push took it away since)


@dataclass(frozen=True)
class Identity:
    """Who the poller commits as, so a cron job on a host without any git config can commit."""

    name: str
    email: str


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every process under it (found through /proc before any dies, while
    they are still its descendants: once killed, their children would be reparented and lost)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        frontier = [child for child in children if child not in tree]
        tree.update(frontier)
    for member in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)


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
        # Never ask for a password on a terminal: an unattended run must fail, not hang; and an
        # HTTP transfer slower than 1 kB/s for 30 s is abandoned by git itself.
        env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_HTTP_LOW_SPEED_LIMIT="1000", GIT_HTTP_LOW_SPEED_TIME="30")
        identity = ("-c", f"user.name={self.identity.name}", "-c", f"user.email={self.identity.email}")
        argv = ["git", "-C", str(self.path), *identity, *args]
        changing = args[0] in CHANGING
        if changing:
            crashpoints.reached(f"git {args[0]}")
        # Files, not pipes: a helper git starts (git-remote-http, ssh) can outlive git itself and
        # hold a pipe open, and reading a pipe until its end would then wait as long as it does.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            process = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
            if changing:
                crashpoints.reached(f"git {args[0]} (running)", running=True)
            try:
                process.wait(timeout=GIT_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                kill_tree(process.pid)
                process.wait()
                raise GitError(f"git {args[0]} took more than {GIT_TIMEOUT_SECONDS} s: stopped") from None
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(argv, process.returncode, out.read(), err.read())

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
        if not self.journal_path.exists():
            self.record(operation)

    def record(self, operation: str) -> None:
        """Record the step about to run: HEAD now, and the remote's branch it moves to."""
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

    def _journal(self) -> dict[str, Any] | None:
        try:
            entry = json.loads(self.journal_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            entry = {}  # written atomically, so this is damage, not a half-write: recover all the same
        return dict(entry) if isinstance(entry, dict) else {}

    # --- getting the clone to the remote's branch ------------------------------------------------

    def clear_stale_locks(self) -> None:
        """Remove git's own lock files: under the poller's lock, any left is from a killed run
        (index.lock, next-index-<pid>.lock of a partial commit, HEAD.lock, packed-refs.lock, refs)."""
        git_dir = self.path / ".git"
        for lock in [*git_dir.glob("*.lock"), *git_dir.glob("refs/**/*.lock")]:
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

    def _recover(self, journal: dict[str, Any]) -> None:
        """Put the clone back after a killed run, refusing whatever that run could not have written.

        A sync's checkout writes the files that differ between the commits it moved between; an
        install writes api/models and may commit it (with the trailer). Anything else changed
        since, a file or a commit, is someone else's: refused, nothing touched, the journal kept.
        """
        operation = journal.get("operation", "an unknown step")
        moved = [c for c in (journal.get("from"), journal.get("to")) if isinstance(c, str) and c]
        ours = self._paths_between(*moved) if operation in ("sync", "reset") else set()
        foreign_paths = [p for p in self._changed_paths() if not (p.startswith(f"{MODEL_PATH}/") or p in ours)]
        foreign_commits = [f"{c.sha[:10]} {c.subject}" for c in self._unpushed(known=moved) if not c.ours]
        if foreign_paths or foreign_commits:
            found = ", ".join(
                part
                for part in (
                    f"changes to {_listing(foreign_paths)}" if foreign_paths else "",
                    f"commits {_listing(foreign_commits)}" if foreign_commits else "",
                )
                if part
            )
            raise ForeignWork(
                f"a run was interrupted during {operation}, and {self.path} has since gained work the poller did "
                f"not do ({found}): keep it elsewhere, then run again (REPO_PATH is the poller's own clone)"
            )
        logger.warning(
            "a run was interrupted during %s (pid %s, %s): putting the clone back to %s",
            operation,
            journal.get("pid", "?"),
            journal.get("started", "at an unknown time"),
            self.upstream,
        )
        self.git("checkout", "--quiet", "--force", "-B", self.branch, self.upstream)
        leftover = self._untracked()  # all the interrupted step's: anything else was refused above
        for relative in leftover:
            path = self.path / relative
            path.unlink(missing_ok=True)
            for parent in path.parents:
                if parent == self.path or any(parent.iterdir()):
                    break
                parent.rmdir()
        if leftover:
            logger.info("removed %d file(s) the interrupted run left", len(leftover))

    def _untracked(self) -> list[str]:
        listed = self.git("ls-files", "--others", "--exclude-standard", "-z").stdout
        return [path for path in listed.split("\0") if path]

    def _changed_paths(self) -> list[str]:
        """Every path that differs from HEAD: modified, staged, deleted, untracked (renames: both names)."""
        listed = self.git("status", "--porcelain=v1", "-z", "--untracked-files=all").stdout.split("\0")
        paths, entries = [], iter(listed)
        for entry in entries:
            if len(entry) < 4:
                continue
            paths.append(entry[3:])
            if entry[0] in "RC":  # a rename's or copy's source follows as its own field
                paths.append(next(entries, ""))
        return [path for path in paths if path]

    def _paths_between(self, *commits: str) -> set[str]:
        """The paths a checkout from one commit to the other writes (every path of the one there is)."""
        if len(commits) == 2:
            listed = self.git("diff", "--name-only", "-z", commits[0], commits[1], check=False).stdout
        elif commits:
            listed = self.git("ls-tree", "-r", "-z", "--name-only", commits[0], check=False).stdout
        else:
            return set()
        return set(filter(None, listed.split("\0")))

    def _refuse_foreign_work(self) -> None:
        """Without a journal, every change, a branch of someone's checked out, and every local commit
        without the trailer that the remote never had, is someone else's."""
        paths = self._changed_paths()
        if paths:
            raise ForeignWork(
                f"{self.path} holds changes the poller did not make ({_listing(paths)}). REPO_PATH must be "
                f"the poller's own clone: keep that work elsewhere (git -C {self.path} stash --include-untracked), "
                f"then run again"
            )
        current = self.git("symbolic-ref", "--quiet", "--short", "HEAD", check=False).stdout.strip()
        if current and current != self.branch:
            raise ForeignWork(
                f"{self.path} has branch {current} checked out, not {self.branch}: someone is working in it. "
                f"REPO_PATH must be the poller's own clone (git -C {self.path} checkout {self.branch} gives it back)"
            )
        unpushed = self._unpushed()
        foreign = [f"{c.sha[:10]} {c.subject}" for c in unpushed if not c.ours and not c.published]
        if foreign:
            raise ForeignWork(
                f"{self.path} holds {len(foreign)} commit(s) not on {self.upstream} that the poller did not "
                f"make ({_listing(foreign)}): push them, or move them to a branch of their own "
                f"(git -C {self.path} branch keep-my-work && git -C {self.path} reset --hard {self.upstream}), "
                f"then run again"
            )
        withdrawn = [c for c in unpushed if c.published and not c.ours]
        if withdrawn:
            logger.warning(
                "%s no longer has %d commit(s) it once had and the clone took from it (%s): the branch was "
                "rewritten upstream (a force push), so they are dropped here too",
                self.upstream,
                len(withdrawn),
                _listing([f"{c.sha[:10]} {c.subject}" for c in withdrawn]),
            )
        ours = sum(1 for c in unpushed if c.ours)
        if ours:
            logger.info("dropping %d unpushed commit(s) of an earlier run of the poller", ours)

    def _unpushed(self, known: list[str] | None = None) -> list[LocalCommit]:
        """The commits that moving to the remote's branch would drop (beyond `known` ones).

        A commit is `published` when the remote's branch once held it (it is behind a value the
        remote-tracking branch's reflog recorded), `ours` when it carries the poller's trailer.
        """
        current = self.git("symbolic-ref", "--quiet", "--short", "HEAD", check=False).stdout.strip()
        refs = ["HEAD"] if current in ("", self.branch) else []  # another branch keeps its own commits
        if self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{self.branch}", check=False).returncode == 0:
            refs.append(f"refs/heads/{self.branch}")
        if not refs or not self.head():
            return []
        upstream_ref = f"refs/remotes/{self.upstream}"
        history = self.git("log", "-g", "--format=%H", upstream_ref, check=False).stdout.split()
        fields = f"%H%x00%(trailers:key={TRAILER},valueonly,separator=%x2C)%x00%s"
        listed = self.git("log", f"--format={fields}", *refs, "--not", self.upstream, *(known or [])).stdout
        never = set(self.git("rev-list", *refs, "--not", self.upstream, *history, *(known or [])).stdout.split())
        commits = []
        for line in listed.splitlines():
            sha, trailer, subject = [*line.split("\0"), "", ""][:3]
            commits.append(LocalCommit(sha, subject, ours=bool(trailer.strip()), published=sha not in never))
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
            self.record("reset")  # a reset writes the files between HEAD and the new remote head, like a sync
            self.git("reset", "--quiet", "--hard", self.upstream)
            if not redo():
                return False
        return False
