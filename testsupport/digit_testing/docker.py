"""A real Docker engine for the tests and the benchmarks: Debian's docker.io, nothing pulled.

- `engine()`: the daemon on /var/run/docker.sock, started when none answers (as root) and stopped
  again at the end; a daemon that was already running is used and left running.
- `Engine`: Debian's `docker` client (its BuildKit is built in: a newer client without the buildx
  plugin refuses BuildKit builds), and everything one run makes carries the label
  `digit.test=<run>`, so that `cleanup()` removes exactly that: containers, networks, volumes and
  images (tags included), and nothing of anyone else's.
- `build()`: `docker build` with BuildKit, the machine's CA bundle handed over as the build secret
  `pip-ca` (the Dockerfiles mount it while pip downloads; it never lands in a layer).

Outside CI a missing engine skips the tests that need it, saying how to install it; with CI=true it
fails them (digit_testing.tooling).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digit_testing.processes import answers, poll_until, stop
from digit_testing.tooling import require_tool, unavailable

INSTALL = "apt-get install docker.io docker-compose (Debian's engine, client and Compose)"
SOCKET = Path("/var/run/docker.sock")
# Debian's client first: it builds with the BuildKit inside Debian's dockerd. DOCKER overrides it.
CLIENTS = ("/usr/bin/docker",)
LABEL = "digit.test"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
REPO = Path(__file__).resolve().parents[2]
# How each kind of thing a run made is removed (a container with its anonymous volumes, an image
# with all its tags).
REMOVE = {
    "container": ("rm", "--force", "--volumes"),
    "network": ("network", "rm"),
    "volume": ("volume", "rm"),
    "image": ("image", "rm", "--force"),
}


class DockerError(RuntimeError):
    """A docker command failed; the message holds the command and its output."""


def find_client() -> str | None:
    """$DOCKER, Debian's /usr/bin/docker, or PATH's docker; None when there is none."""
    found = os.environ.get("DOCKER") or next((c for c in CLIENTS if os.access(c, os.X_OK)), None)
    return found or shutil.which("docker")


def client() -> str:
    """The docker client the tests drive (find_client), or the tests' skip-or-fail rule."""
    return require_tool("docker", INSTALL, found=find_client())


def ca_bundle() -> Path:
    """The CA bundle this machine's own TLS clients trust (pip's, then OpenSSL's default)."""
    for variable in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        if (value := os.environ.get(variable)) and Path(value).is_file():
            return Path(value)
    default = ssl.get_default_verify_paths().cafile
    if default and Path(default).is_file():
        return Path(default)
    return Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass
class Engine:
    """One test run's use of the engine: its client, its label, and what it must clean up."""

    cli: str
    run_id: str = field(default_factory=lambda: f"{os.getpid()}-{secrets.token_hex(3)}")

    @property
    def label(self) -> str:
        return f"{LABEL}={self.run_id}"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, "DOCKER_BUILDKIT": "1", **(extra or {})}

    def __call__(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`docker ARGS`, its output as text; DockerError when `check` and it fails."""
        return run_command([self.cli, *args], check=check, timeout=timeout, input=input, env=self.env(env), cwd=cwd)

    def inspect(self, *names: str, kind: str = "container") -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = json.loads(self(kind, "inspect", *names).stdout)
        return result

    def build(
        self,
        tag: str,
        dockerfile: Path,
        *,
        context: Path = REPO,
        build_args: Mapping[str, str] | None = None,
        target: str | None = None,
        secret: Path | None = None,
        no_cache: bool = False,
        timeout: float = 900,
    ) -> None:
        """Build `dockerfile` with BuildKit as `tag` (labelled as this run's)."""
        command = ["build", "--progress=plain", "-f", str(dockerfile), "-t", tag, "--label", self.label]
        for key, value in (build_args or {}).items():
            command += ["--build-arg", f"{key}={value}"]
        if target:
            command += ["--target", target]
        if no_cache:
            command.append("--no-cache")
        # Docker's predefined proxy arguments: used by the build's RUNs, kept out of the image's history.
        for proxy in PROXY_VARIABLES:
            if os.environ.get(proxy):
                command += ["--build-arg", proxy]
        if secret is not None:
            command += ["--secret", f"id=pip-ca,src={secret}"]
        self(*command, str(context), timeout=timeout)

    @contextmanager
    def container(self, image: str, *options: str, arguments: Sequence[str] = ()) -> Iterator[Container]:
        """`docker run --detach` of `image` (this run's label added) for the duration; removed after."""
        name = f"digit-{self.run_id}-{secrets.token_hex(3)}"
        self("run", "--detach", "--name", name, "--label", self.label, *options, image, *arguments)
        try:
            yield Container(self, name)
        finally:
            self("rm", "--force", "--volumes", name, check=False)

    def resources(self, label: str | None = None) -> list[tuple[str, str]]:
        """(kind, id) of every container, network, volume and image carrying `label` (this run's by
        default), containers first: the order they can be removed in."""
        found = []
        for kind, command in (
            ("container", ["ps", "-aq"]),
            ("network", ["network", "ls", "-q"]),
            ("volume", ["volume", "ls", "-q"]),
            ("image", ["images", "-q", "--no-trunc"]),
        ):
            names = self(*command, "--filter", f"label={label or self.label}").stdout.split()
            found += [(kind, name) for name in dict.fromkeys(names)]
        return found

    def cleanup(self) -> list[str]:
        """Remove every container, network, volume and image of this run; what could not be removed."""
        left = []
        for kind, name in self.resources():
            if self(*REMOVE[kind], name, check=False).returncode != 0:
                left.append(f"{kind} {name}")
        return left

    def leftovers(self) -> list[str]:
        """What of this run is still on the engine (the test of the cleanup)."""
        return [f"{kind} {name}" for kind, name in self.resources()]


@dataclass(frozen=True)
class Container:
    """A running container: its name, its address on its first network, its log."""

    engine: Engine
    name: str

    def address(self, network: str | None = None) -> str:
        networks = self.engine.inspect(self.name)[0]["NetworkSettings"]["Networks"]
        return str(networks[network or next(iter(networks))]["IPAddress"])

    def logs(self) -> str:
        result = self.engine("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.engine("exec", self.name, *command, timeout=timeout)

    def exited(self) -> str | None:
        """None while the container runs; else how it ended."""
        state = self.engine.inspect(self.name)[0]["State"]
        return None if state["Running"] else f"{self.name} exited with {state['ExitCode']}"

    def wait_until(self, *command: str, timeout: float = 60) -> None:
        """Until `command` succeeds inside the container (pg_isready, say); DockerError with the log if not."""
        why = poll_until(
            lambda: self.engine("exec", self.name, *command, check=False).returncode == 0,
            timeout=timeout,
            interval=0.2,
            timed_out=f"{' '.join(command)} never succeeded in {self.name}",
        )
        if why is not None:
            raise DockerError(f"{why}; its log:\n{self.logs()[-4000:]}")

    def wait_for(self, url: str, timeout: float = 60, status: int = 200) -> None:
        """Until `url` answers `status`; DockerError with the container's log if it exits or time runs out."""
        why = poll_until(
            lambda: answers(url, status, timeout=2),
            timeout=timeout,
            interval=0.1,
            timed_out=f"{url} never answered {status}",
            gone=self.exited,
        )
        if why is not None:
            raise DockerError(f"{why}; the log of {self.name}:\n{self.logs()[-4000:]}")


def run_command(
    command: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 120,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
            timeout=timeout,
            input=input,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as error:
        raise DockerError(f"{' '.join(command)} took more than {timeout} s") from error
    if check and result.returncode != 0:
        raise DockerError(
            f"{' '.join(command)} exited with {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def daemon_answers(cli: str) -> bool:
    """Whether a daemon answers the client (docker version needs the server)."""
    try:
        return run_command([cli, "version", "--format", "{{.Server.Version}}"], check=False, timeout=20).returncode == 0
    except DockerError:
        return False


@contextmanager
def engine(state_dir: Path) -> Iterator[Engine]:
    """A Docker engine for the duration: the running one, else dockerd started here and stopped after."""
    cli = client()
    if daemon_answers(cli):
        yield Engine(cli)
        return
    if os.geteuid() != 0:
        unavailable(f"no Docker engine answers and only root can start one: sudo systemctl start docker ({INSTALL})")
    dockerd = require_tool("dockerd", INSTALL, found=shutil.which("dockerd", path="/usr/sbin:/usr/bin:/sbin:/bin"))
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "dockerd.log"
    with open(log, "wb") as out:
        # The default socket (what docker-compose and the docker CLI look for), and a pid file of
        # our own: a dockerd killed earlier leaves /var/run/docker.pid behind, which blocks a start.
        process = subprocess.Popen(
            [dockerd, f"--host=unix://{SOCKET}", f"--pidfile={state_dir / 'dockerd.pid'}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    why = poll_until(
        lambda: daemon_answers(cli),
        timeout=60,
        interval=0.5,
        timed_out="dockerd did not answer within 60 s",
        gone=lambda: None if process.poll() is None else f"dockerd exited with {process.returncode}",
    )
    if why is not None:
        process.kill()
        unavailable(f"{why}; its log:\n{log.read_text(errors='replace')[-3000:]}")
    try:
        yield Engine(cli)
    finally:
        stop(process, timeout=60)  # dockerd stops its containerd and leaves its state consistent
