"""install_cron.sh and poll_model.sh against the real `crontab` command.

Isolation: when the tests run as root they create a throwaway user (``useradd``) and run both
scripts as that user (``runuser``), so only that user's crontab is ever written; the user and its
crontab are removed at the end of the session. Where users cannot be created, the tests use the
invoking user's own crontab and restore it byte for byte after every test.

The scripts are copied into a fake checkout whose path has spaces, a quote and a ``%`` in it, with
a fake ``.venv/bin/python``; they always run with cwd=/ and a cron-like minimal environment. No
test needs the cron daemon: the installed line's command is run with ``sh -c`` as cron would.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from digit_testing.tooling import require_tool

AUTOMATION = Path(__file__).resolve().parents[1]
SCRIPTS = ("install_cron.sh", "poll_model.sh")
MARKER = " # digit-poller:"
CRON_PATH = "/usr/bin:/bin"
SECRET = "ghp_doNotPrintThisToken0123456789"  # noqa: S105 (a fake token that must never be printed)
# useradd and runuser live in sbin, which a non-login PATH may lack.
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


def sbin(name: str) -> str | None:
    return shutil.which(name, path=SBIN_PATH)


# A crontab with everything a user may have: comments, blank lines, env lines, other jobs, the
# line of another checkout, a line that mentions digit-poller without being ours, no final blanks.
BEFORE = (
    b"# my crontab: keep me exactly as I am\n"
    b'MAILTO=""\n'
    b"SHELL=/bin/bash\n"
    b"\n"
    b"0 3 * * *  /usr/bin/backup --all   # nightly\n"
    b"\t# indented comment with a tab and trailing spaces   \n"
    b"*/5 * * * * flock -n /tmp/other.lock /srv/other/automation/poll_model.sh # digit-poller:/srv/other\n"
)
AFTER = b"\n# after our line\n@reboot echo 'digit-poller:not ours' % done\n\n"


def _require_crontab() -> None:
    require_tool("crontab", "apt-get install cron")
    require_tool("flock", "apt-get install util-linux")


@dataclass
class Account:
    """The user whose crontab the tests write."""

    name: str
    uid: int
    gid: int
    throwaway: bool
    runuser: str = "runuser"

    def crontab_cmd(self, *args: str) -> list[str]:
        if self.throwaway:
            return ["crontab", "-u", self.name, *args]
        return ["crontab", *args]

    def read_crontab(self) -> bytes | None:
        """The crontab, byte for byte, or None when the user has none."""
        done = subprocess.run(
            self.crontab_cmd("-l"), capture_output=True, env={**os.environ, "LC_ALL": "C"}, check=False
        )
        if done.returncode != 0:
            assert b"no crontab" in done.stderr.lower(), done.stderr
            return None
        return done.stdout

    def write_crontab(self, content: bytes | None) -> None:
        if content is None:
            subprocess.run(self.crontab_cmd("-r"), capture_output=True, check=False)
        else:
            subprocess.run(self.crontab_cmd("-"), input=content, check=True, capture_output=True)
        assert self.read_crontab() == content

    def wrap(self, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """argv/env that run argv as this user with exactly env."""
        if self.throwaway:
            return [self.runuser, "-u", self.name, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv], {}
        return argv, env


def _create_throwaway_user() -> Account | None:
    useradd, runuser = sbin("useradd"), sbin("runuser")
    if os.geteuid() != 0 or useradd is None or runuser is None or sbin("userdel") is None:
        return None
    name = f"digitpollertest{secrets.randbelow(10**6)}"
    done = subprocess.run(
        [useradd, "--create-home", "--user-group", "--shell", "/bin/sh", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    entry = pwd.getpwnam(name)
    account = Account(name, entry.pw_uid, entry.pw_gid, throwaway=True, runuser=runuser)
    probe = subprocess.run([runuser, "-u", name, "--", "crontab", "-l"], capture_output=True, text=True, check=False)
    if probe.returncode != 0 and "no crontab" not in probe.stderr.lower():
        _remove_user(account)
        return None
    return account


def _remove_user(account: Account) -> None:
    subprocess.run(["crontab", "-u", account.name, "-r"], capture_output=True, check=False)
    if shutil.which("pkill"):
        subprocess.run(["pkill", "-KILL", "-u", account.name], capture_output=True, check=False)
    subprocess.run([str(sbin("userdel")), "--remove", account.name], capture_output=True, check=False)


@pytest.fixture(scope="session")
def account() -> Iterator[Account]:
    _require_crontab()
    throwaway = _create_throwaway_user()
    if throwaway is None:
        # No user can be created: use our own crontab, saved and restored around each test.
        yield Account(getpass.getuser(), os.getuid(), os.getgid(), throwaway=False)
        return
    try:
        yield throwaway
    finally:
        _remove_user(throwaway)


@dataclass
class Box:
    """One test's world: a fake checkout, a home folder, and the user's crontab."""

    account: Account
    base: Path
    repo: Path
    home: Path
    run_dir: Path

    @property
    def install(self) -> Path:
        return self.repo / "automation" / "install_cron.sh"

    @property
    def poll(self) -> Path:
        return self.repo / "automation" / "poll_model.sh"

    @property
    def env_file(self) -> Path:
        return self.home / ".config" / "digit-poller" / "env"

    @property
    def log_file(self) -> Path:
        return self.home / ".local" / "state" / "digit-poller" / "poll.log"

    @property
    def lock_file(self) -> Path:
        return self.run_dir / "digit-poller.lock"

    def cron_env(self) -> dict[str, str]:
        """What cron gives a job."""
        return {"HOME": str(self.home), "LOGNAME": self.account.name, "PATH": CRON_PATH, "SHELL": "/bin/sh"}

    def login_env(self) -> dict[str, str]:
        return {
            **self.cron_env(),
            "USER": self.account.name,
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "XDG_RUNTIME_DIR": str(self.run_dir),
        }

    def run(self, argv: list[str | Path], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        args, environ = self.account.wrap([str(a) for a in argv], self.login_env() if env is None else env)
        return subprocess.run(args, env=environ, cwd="/", capture_output=True, text=True, timeout=60, check=False)

    def give(self) -> None:
        """Hand everything under base to the test user (files the test itself created)."""
        if not self.account.throwaway:
            return
        for path in [self.base, *self.base.rglob("*")]:
            os.lchown(path, self.account.uid, self.account.gid)

    def crontab(self) -> bytes | None:
        return self.account.read_crontab()

    def set_crontab(self, content: bytes | None) -> None:
        self.account.write_crontab(content)

    def installed_line(self) -> str:
        lines = [line for line in (self.crontab() or b"").decode().splitlines() if line.endswith(self.marker())]
        assert len(lines) == 1, lines
        return lines[0]

    def marker(self, repo: Path | None = None) -> str:
        return MARKER + str(repo or self.repo).replace("%", "\\%")


def make_checkout(where: Path, venv: bool = True) -> Path:
    (where / "automation").mkdir(parents=True)
    for name in SCRIPTS:
        shutil.copy2(AUTOMATION / name, where / "automation" / name)
    if venv:
        python = where / ".venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text("#!/bin/sh\necho 'the fake venv python must not run in these tests' >&2\nexit 3\n")
        python.chmod(0o755)
    return where


def make_box(account: Account, plain: bool) -> Box:
    if plain:
        base = Path(tempfile.mkdtemp(prefix="digitpoller"))
        repo_name, home_name, run_name = "checkout", "home", "run"
    else:
        base = Path(tempfile.mkdtemp(prefix="digit poller test "))
        repo_name, home_name, run_name = "check out's 100%", "home dir", "run dir"
    run_dir = base / run_name
    run_dir.mkdir()
    home = base / home_name
    home.mkdir()
    box = Box(account, base, make_checkout(base / repo_name), home, run_dir)
    box.give()
    return box


@contextlib.contextmanager
def isolated_crontab(account: Account) -> Iterator[None]:
    saved = account.read_crontab()
    account.write_crontab(None)
    try:
        yield
    finally:
        account.write_crontab(None if account.throwaway else saved)


@contextlib.contextmanager
def boxed(account: Account, plain: bool) -> Iterator[Box]:
    """A box for `account`, its crontab saved/emptied meanwhile; removed afterwards."""
    with isolated_crontab(account):
        made = make_box(account, plain=plain)
        try:
            yield made
        finally:
            shutil.rmtree(made.base, ignore_errors=True)


@pytest.fixture
def box(account: Account) -> Iterator[Box]:
    """A checkout with spaces, a quote and a % in its path, and the user's crontab saved/emptied."""
    with boxed(account, plain=False) as made:
        yield made


@pytest.fixture
def plain_box(account: Account) -> Iterator[Box]:
    """The same with plain paths, where the installed line is readable without any quoting."""
    with boxed(account, plain=True) as made:
        yield made


def command_of(line: str) -> str:
    """The command part of a crontab line, as cron hands it to sh -c (\\% means %)."""
    rest = line.split(None, 5)[5]
    command = rest[: rest.rindex(MARKER)]
    return re.sub(r"\\%", "%", command)


def write_env_file(box: Box, mode: int, extra: str = "") -> None:
    box.env_file.parent.mkdir(parents=True, exist_ok=True)
    box.env_file.write_text(f"MODEL_SOURCE=dir:/srv/releases\nGITHUB_TOKEN={SECRET}\n{extra}")
    box.give()
    box.env_file.chmod(mode)


def make_stub(box: Box) -> Path:
    """A stand-in for python: records its arguments, cwd and environment, prints, exits 0."""
    record = box.base / "stub record"
    record.mkdir()
    stub = box.base / "stub python"
    stub.write_text(
        "#!/bin/sh\n"
        f"rec={shlex.quote(str(record))}\n"
        'echo call >> "$rec/calls"\n'
        'printf "%s\\n" "$@" > "$rec/args"\n'
        'pwd > "$rec/cwd"\n'
        'env > "$rec/env"\n'
        'echo "stub poller ran: $*"\n'
        'echo "stub poller stderr" >&2\n'
        "exit 0\n"
    )
    stub.chmod(0o755)
    box.give()
    return record


def calls(record: Path) -> int:
    path = record / "calls"
    return len(path.read_text().splitlines()) if path.exists() else 0


def recorded_env(record: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (record / "env").read_text().splitlines() if "=" in line)


# --- install_cron.sh -------------------------------------------------------------------------


def test_scripts_are_executable_in_the_repository() -> None:
    for name in SCRIPTS:
        mode = (AUTOMATION / name).stat().st_mode
        assert mode & stat.S_IXUSR, f"{name} must be executable (cron runs poll_model.sh directly)"


def test_help(box: Box) -> None:
    done = box.run([box.install, "--help"])
    assert done.returncode == 0, done.stderr
    for word in ("--schedule", "--env-file", "--log-file", "--lock-file", "--uninstall", "--dry-run"):
        assert word in done.stdout
    assert box.crontab() is None


def test_installed_line_format(plain_box: Box) -> None:
    box = plain_box
    done = box.run([box.install])
    assert done.returncode == 0, done.stderr
    expected = (
        f"*/15 * * * * flock -n {box.lock_file} {box.repo}/automation/poll_model.sh"
        f" >> {box.log_file} 2>&1 # digit-poller:{box.repo}"
    )
    assert box.crontab() == (expected + "\n").encode()
    assert expected in done.stdout


def test_install_into_empty_crontab_creates_env_template_and_log_folder(box: Box) -> None:
    assert box.crontab() is None
    done = box.run([box.install])
    assert done.returncode == 0, done.stderr

    line = box.installed_line()
    assert box.crontab() == (line + "\n").encode()
    assert line.startswith("*/15 * * * * flock -n ")
    assert shlex.split(command_of(line)) == [
        "flock",
        "-n",
        str(box.lock_file),
        str(box.poll),
        ">>",
        str(box.log_file),
        "2>&1",
    ]

    # the env template: private, every line a comment, names the variables, holds no secret
    assert stat.S_IMODE(box.env_file.stat().st_mode) == 0o600
    assert box.env_file.stat().st_uid == box.account.uid
    template = box.env_file.read_text()
    assert all(not line.strip() or line.lstrip().startswith("#") for line in template.splitlines())
    for name in ("MODEL_SOURCE", "GITHUB_API_URL", "GITHUB_TOKEN", "REPO_PATH", "GIT_REMOTE", "GIT_BRANCH"):
        assert f"# {name}=" in template
    assert "MIN_ACCURACY" in template and "MODEL_PUBLIC_KEY" in template
    assert "fill it in" in done.stderr and str(box.env_file) in done.stderr
    assert box.log_file.parent.is_dir()


def test_install_keeps_every_other_line_byte_for_byte(box: Box) -> None:
    box.set_crontab(BEFORE)
    done = box.run([box.install])
    assert done.returncode == 0, done.stderr
    after = box.crontab()
    assert after is not None
    line = box.installed_line()
    assert after == BEFORE + line.encode() + b"\n"
    assert after.count(box.marker().encode()) == 1
    assert " flock -n " in line and "poll_model.sh" in line


def test_install_twice_changes_nothing(box: Box) -> None:
    box.set_crontab(BEFORE)
    assert box.run([box.install]).returncode == 0
    first = box.crontab()
    again = box.run([box.install])
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stderr
    assert box.crontab() == first


def test_new_schedule_replaces_the_line_in_place(box: Box) -> None:
    box.set_crontab(BEFORE)
    assert box.run([box.install]).returncode == 0
    old_line = box.installed_line()
    box.set_crontab(BEFORE + old_line.encode() + b"\n" + AFTER)

    done = box.run([box.install, "--schedule", "7  2 * * 1-5"])
    assert done.returncode == 0, done.stderr
    new_line = box.installed_line()
    assert new_line.startswith("7 2 * * 1-5 flock -n ")
    assert new_line.split(None, 5)[5] == old_line.split(None, 5)[5]
    assert box.crontab() == BEFORE + new_line.encode() + b"\n" + AFTER


def test_uninstall_removes_only_its_own_line(box: Box) -> None:
    box.set_crontab(BEFORE)
    assert box.run([box.install]).returncode == 0
    box.set_crontab(BEFORE + box.installed_line().encode() + b"\n" + AFTER)

    done = box.run([box.install, "--uninstall"])
    assert done.returncode == 0, done.stderr
    assert box.crontab() == BEFORE + AFTER

    again = box.run([box.install, "--uninstall"])
    assert again.returncode == 0, again.stderr
    assert "nothing to remove" in again.stderr
    assert box.crontab() == BEFORE + AFTER


def test_uninstall_of_the_only_line_leaves_no_crontab(box: Box) -> None:
    assert box.run([box.install]).returncode == 0
    assert box.run([box.install, "--uninstall"]).returncode == 0
    assert box.crontab() is None


def test_two_checkouts_each_have_their_own_line(box: Box) -> None:
    other = make_checkout(box.base / "other checkout")
    box.give()
    assert box.run([box.install]).returncode == 0
    assert box.run([other / "automation" / "install_cron.sh", "--schedule", "0 * * * *"]).returncode == 0
    lines = (box.crontab() or b"").decode().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(box.marker()) and lines[1].endswith(box.marker(other))

    assert box.run([other / "automation" / "install_cron.sh", "--uninstall"]).returncode == 0
    assert (box.crontab() or b"").decode().splitlines() == lines[:1]


def test_dry_run_changes_nothing(box: Box) -> None:
    box.set_crontab(BEFORE)
    done = box.run([box.install, "--dry-run", "--schedule", "1 2 3 4 5"])
    assert done.returncode == 0, done.stderr
    assert box.crontab() == BEFORE
    assert not box.env_file.exists() and not box.env_file.parent.exists()
    assert not box.log_file.parent.exists()

    # what it printed is exactly what a real install writes
    printed = done.stdout.strip()
    assert printed.endswith(box.marker()) and printed.startswith("1 2 3 4 5 flock -n ")
    assert box.run([box.install, "--schedule", "1 2 3 4 5"]).returncode == 0
    assert box.crontab() == BEFORE + printed.encode() + b"\n"

    # a dry-run uninstall leaves it in place too
    assert box.run([box.install, "--uninstall", "--dry-run"]).returncode == 0
    assert box.crontab() == BEFORE + printed.encode() + b"\n"


def test_dry_run_without_a_crontab_creates_none(box: Box) -> None:
    done = box.run([box.install, "--dry-run"])
    assert done.returncode == 0, done.stderr
    assert box.crontab() is None


def test_missing_venv_python_says_run_make_setup(box: Box) -> None:
    box.set_crontab(BEFORE)
    (box.repo / ".venv" / "bin" / "python").unlink()
    done = box.run([box.install])
    assert done.returncode != 0
    assert "make setup" in done.stderr
    assert str(box.repo / ".venv" / "bin" / "python") in done.stderr
    assert box.crontab() == BEFORE


@pytest.mark.parametrize(
    "schedule",
    ["*/15 * * *", "*/15 * * * * *", "", "* * * * ;reboot", "* * * * %"],
)
def test_bad_schedule_is_refused(box: Box, schedule: str) -> None:
    box.set_crontab(BEFORE)
    done = box.run([box.install, "--schedule", schedule])
    assert done.returncode != 0
    assert "schedule" in done.stderr
    assert box.crontab() == BEFORE


def test_installer_refuses_an_env_file_others_can_read(box: Box) -> None:
    write_env_file(box, 0o644)
    done = box.run([box.install])
    assert done.returncode != 0
    assert str(box.env_file) in done.stderr and "600" in done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert box.crontab() is None


def test_custom_env_file_is_passed_to_the_wrapper(box: Box) -> None:
    custom = box.base / "my env" / "poller env"
    done = box.run([box.install, "--env-file", custom])
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(custom.stat().st_mode) == 0o600
    words = shlex.split(command_of(box.installed_line()))
    assert words[:2] == [f"POLLER_ENV_FILE={custom}", "flock"]


# --- poll_model.sh ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_wrapper_refuses_an_env_file_group_or_others_can_read(box: Box, mode: int) -> None:
    write_env_file(box, mode)
    record = make_stub(box)
    done = box.run([box.poll], env={**box.cron_env(), "POLLER_PYTHON": str(box.base / "stub python")})
    assert done.returncode != 0
    assert str(box.env_file) in done.stderr
    assert SECRET not in done.stdout + done.stderr and "dir:/srv/releases" not in done.stdout + done.stderr
    assert calls(record) == 0


def test_wrapper_refuses_an_env_file_owned_by_someone_else(box: Box) -> None:
    record = make_stub(box)
    write_env_file(box, 0o600)
    if box.account.throwaway:
        os.chown(box.env_file, 0, 0)
    elif os.geteuid() == 0:
        os.chown(box.env_file, 65534, 65534)
    else:
        pytest.skip("needs root to give the file to another user")
    done = box.run([box.poll], env={**box.cron_env(), "POLLER_PYTHON": str(box.base / "stub python")})
    assert done.returncode != 0
    assert str(box.env_file) in done.stderr and "owned" in done.stderr
    assert calls(record) == 0


def test_wrapper_without_env_file_runs_the_installed_poller(box: Box) -> None:
    record = make_stub(box)
    done = box.run([box.poll, "--extra"], env={**box.cron_env(), "POLLER_PYTHON": str(box.base / "stub python")})
    assert done.returncode == 0, done.stderr
    assert (record / "args").read_text().splitlines() == ["-m", "digit_poller", "--once", "--extra"]
    env = recorded_env(record)
    assert "PYTHONPATH" not in env  # the poller is installed in that python's environment
    # No default clone: the poller resets and commits in REPO_PATH, so it is never this checkout.
    assert "REPO_PATH" not in env


def test_wrapper_passes_on_the_exit_code(box: Box) -> None:
    stub = box.base / "rejecting python"
    stub.write_text("#!/bin/sh\nexit 2\n")
    stub.chmod(0o755)
    box.give()
    done = box.run([box.poll], env={**box.cron_env(), "POLLER_PYTHON": str(stub)})
    assert done.returncode == 2


# --- the installed line, run as cron runs it -------------------------------------------------


def test_installed_line_runs_the_poller_and_flock_skips_an_overlapping_run(box: Box) -> None:
    record = make_stub(box)
    write_env_file(box, 0o600, extra=f"POLLER_PYTHON={shlex.quote(str(box.base / 'stub python'))}\n")
    box.set_crontab(BEFORE)
    assert box.run([box.install]).returncode == 0
    command = command_of(box.installed_line())

    # 1. a normal run: the wrapper loads the env file and runs python -m digit_poller --once
    done = box.run(["sh", "-c", command], env=box.cron_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""  # everything goes to the log
    assert calls(record) == 1
    assert (record / "args").read_text().splitlines() == ["-m", "digit_poller", "--once"]
    assert (record / "cwd").read_text().strip() == str(box.repo)
    env = recorded_env(record)
    assert "PYTHONPATH" not in env  # the poller is installed in the venv: no hand-set path
    assert env["MODEL_SOURCE"] == "dir:/srv/releases"
    assert "REPO_PATH" not in env
    log = box.log_file.read_text()
    assert "stub poller ran: -m digit_poller --once" in log
    assert "stub poller stderr" in log
    assert SECRET not in log

    # 2. while another run holds the lock, the cron command does nothing
    argv, environ = box.account.wrap(
        ["flock", str(box.lock_file), "sh", "-c", "echo locked; exec sleep 60"], box.cron_env()
    )
    holder = subprocess.Popen(argv, env=environ, cwd="/", stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        skipped = box.run(["sh", "-c", command], env=box.cron_env())
        assert skipped.returncode != 0
        assert calls(record) == 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)

    # 3. once the lock is free again, the next run goes ahead
    again = box.run(["sh", "-c", command], env=box.cron_env())
    assert again.returncode == 0, again.stderr
    assert calls(record) == 2
    assert box.log_file.read_text().count("stub poller ran") == 2


@pytest.fixture
def own_box() -> Iterator[Box]:
    """A box for the invoking user: the real interpreter may live where only that user can reach it
    (a pyenv under /root), so the real poller runs as that user, its crontab saved and restored."""
    _require_crontab()
    account = Account(getpass.getuser(), os.getuid(), os.getgid(), throwaway=False)
    with boxed(account, plain=False) as made:
        yield made


def test_installed_line_runs_the_real_poller_and_pushes_from_a_bare_cron_environment(own_box: Box) -> None:
    """cron's environment exactly (HOME, LOGNAME, PATH=/usr/bin:/bin, SHELL) and a HOME with no git
    configuration at all: the installed line runs the real poller, which commits as itself and pushes."""
    box = own_box
    from digit_testing.releases import git, make_world, write_release

    require_tool("git", "apt-get install git")
    remote, clone = make_world(box.base / "world")
    releases = box.base / "releases"
    write_release(releases / "model-v2", 2)
    shutil.rmtree(box.base / "world" / "seed")
    assert not (box.home / ".gitconfig").exists() and not (box.home / ".config" / "git").exists()
    # The real interpreter (its venv has the components on its path); the env file as a user fills it in.
    write_env_file(
        box,
        0o600,
        extra=f"MODEL_SOURCE=dir:{shlex.quote(str(releases))}\nREPO_PATH={shlex.quote(str(clone))}\n"
        f"POLLER_PYTHON={shlex.quote(sys.executable)}\n",
    )
    box.give()
    box.set_crontab(None)
    assert box.run([box.install]).returncode == 0
    done = box.run(["sh", "-c", command_of(box.installed_line())], env=box.cron_env())
    log = box.log_file.read_text()
    assert done.returncode == 0, log[-3000:]
    shown = git(remote, "-c", "safe.directory=*", "log", "-1", "--format=%an <%ae>%n%B", "main")
    assert shown.startswith("digit-poller <digit-poller@localhost>\nmodel: v1 -> v2"), shown
    assert "Digit-Poller: model-v2" in shown
    assert "pushed model-v2 to origin/main" in log
    assert SECRET not in log
