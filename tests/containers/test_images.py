"""The two images, built with the repository's Dockerfiles on a real Docker engine, and run.

No registry is reachable here, so the official bases are replaced by stand-ins built from Debian's
archive (digit_testing.standins, README "Images"); the images are built as CI builds them
(BuildKit, the repository root as context) with the machine's CA bundle, plus a canary
certificate, as the build secret. Each test runs a container as a user would and checks what a
user would: it answers, it keeps what it must, it holds nothing it must not.
"""

from __future__ import annotations

import json
import secrets

import httpx
import pytest

from digit_testing.docker import Engine
from digit_testing.images import LOCKED_DOWN, ProjectImages, held_certificates
from digit_testing.standins import Bases

pytestmark = pytest.mark.docker

TMP = "/tmp"  # noqa: S108 - the containers' own /tmp, a tmpfs


@pytest.fixture(scope="module")
def network(docker_engine: Engine):
    name = f"digit-images-{docker_engine.run_id}"
    docker_engine("network", "create", "--label", docker_engine.label, name)
    yield name
    docker_engine("network", "rm", name, check=False)


def verdict(held_out_digits) -> dict:
    images, labels = held_out_digits
    return {"pixels": images[0].ravel().tolist(), "label": int(labels[0])}


@pytest.mark.parametrize("which", ["api", "frontend"])
def test_no_certificate_of_the_build_secret_is_in_the_image(
    docker_engine: Engine, project_images: ProjectImages, which: str
) -> None:
    """pip needed the machine's CA (and a canary) to download; neither is in any layer of the image."""
    assert any(name.startswith("canary") for name in project_images.secret.watched)
    assert held_certificates(docker_engine, getattr(project_images, which), project_images.secret) == []


def test_the_api_image_serves_with_postgresql(
    docker_engine: Engine, project_images: ProjectImages, standin_bases: Bases, network: str, held_out_digits
) -> None:
    """DATABASE_URL=postgresql://... as both overlays set it: the API starts, is ready and stores a verdict there.

    The image once lacked psycopg (the feedback extra's requirements file was not in its build
    context), and exited at start with "No module named 'psycopg'".
    """
    password = secrets.token_hex(12)
    database = standin_bases.substitute("postgres:17.6-bookworm")
    alias = f"db-{secrets.token_hex(3)}"
    with docker_engine.container(
        database, "--network", network, "--network-alias", alias, "--user", "999:999",
        "-e", "POSTGRES_USER=digit", "-e", f"POSTGRES_PASSWORD={password}", "-e", "POSTGRES_DB=feedback",
    ) as db:  # fmt: skip
        db.wait_until("pg_isready", "-q", "-h", "127.0.0.1", "-U", "digit", "-d", "feedback")
        with docker_engine.container(
            project_images.api, "--network", network, *LOCKED_DOWN,
            "-e", f"DATABASE_URL=postgresql://digit:{password}@{alias}:5432/feedback",
        ) as api:  # fmt: skip
            url = f"http://{api.address()}:8000"
            api.wait_for(f"{url}/readyz", timeout=60)
            answer = httpx.post(f"{url}/feedback", json=verdict(held_out_digits), timeout=10)
            assert answer.status_code == 201, answer.text
            assert "postgresql://digit:***@" in api.logs()  # the store said where it is, password hidden
        count = db.exec("psql", "-U", "digit", "-d", "feedback", "-tAc", "SELECT count(*) FROM feedback")
        assert count.stdout.strip() == "1"


def test_the_api_image_keeps_verdicts_in_sqlite_on_its_volume(
    docker_engine: Engine, project_images: ProjectImages, network: str, held_out_digits
) -> None:
    """Without DATABASE_URL the image writes SQLite to /data; a new container on the volume still counts them."""
    volume = f"digit-feedback-{docker_engine.run_id}"
    docker_engine("volume", "create", "--label", docker_engine.label, volume)
    options = ("--network", network, *LOCKED_DOWN, "-v", f"{volume}:/data")
    try:
        with docker_engine.container(project_images.api, *options) as api:
            url = f"http://{api.address()}:8000"
            api.wait_for(f"{url}/readyz")
            answer = httpx.post(f"{url}/feedback", json=verdict(held_out_digits), timeout=10)
            assert answer.status_code == 201, answer.text
        with docker_engine.container(project_images.api, *options) as api:
            url = f"http://{api.address()}:8000"
            api.wait_for(f"{url}/readyz")
            stats = httpx.get(f"{url}/feedback/stats", timeout=10).json()
            heard = stats["versions"][0]
            assert heard["confirmed"] + heard["corrected"] == 1, stats
            listing = api.exec("ls", "-ln", "/data").stdout
            assert "feedback.sqlite3" in listing and " 10001 10001 " in listing, listing
    finally:
        docker_engine("volume", "rm", volume, check=False)


def test_the_api_image_runs_as_its_own_user_without_tensorflow(
    docker_engine: Engine, project_images: ProjectImages
) -> None:
    [config] = docker_engine.inspect(project_images.api, kind="image")
    assert config["Config"]["User"] == "10001:10001"
    assert config["Config"]["Cmd"] == ["digit-api"]
    labels = config["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == "0.0.0-test"
    model = json.loads((docker_engine("run", "--rm", project_images.api, "cat", "/app/models/model.json")).stdout)
    assert labels["io.digit.model-version"] == str(model["version"])  # the label says which model is inside
    probe = (
        "import importlib.util as u, os; "
        "print(os.getuid(), [m for m in ('tensorflow', 'keras', 'pip', 'digit_training') if u.find_spec(m)])"
    )
    out = docker_engine("run", "--rm", "--read-only", project_images.api, "python", "-c", probe).stdout
    assert out.strip() == "10001 []", out


def test_the_frontend_image_renders_its_config_and_serves_as_uid_101(
    docker_engine: Engine, project_images: ProjectImages, network: str
) -> None:
    """The entrypoint fills the template from the environment into a tmpfs that uid 101 owns; nginx serves the page."""
    with docker_engine.container(
        project_images.frontend, "--network", network, *LOCKED_DOWN,
        "--tmpfs", "/etc/nginx/conf.d:uid=101,gid=101", "-e", "API_UPSTREAM=127.0.0.1:9",
    ) as frontend:  # fmt: skip
        url = f"http://{frontend.address()}:8080"
        frontend.wait_for(f"{url}/")
        page = httpx.get(f"{url}/")
        assert "<canvas" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        rendered = frontend.exec("cat", "/etc/nginx/conf.d/default.conf").stdout
        assert "server 127.0.0.1:9;" in rendered and "${" not in rendered
        assert httpx.get(f"{url}/api/readyz").status_code == 503  # nothing at the upstream: said, as JSON
        uid = next(
            line for line in frontend.exec("cat", "/proc/1/status").stdout.splitlines() if line.startswith("Uid:")
        )
        assert uid.split()[1:] == ["101"] * 4, uid  # nginx's master process, PID 1


def test_the_frontend_says_why_when_its_config_folder_is_not_writable(
    docker_engine: Engine, project_images: ProjectImages
) -> None:
    """A read-only root without the conf.d tmpfs: the entrypoint says so (as the official one does)."""
    result = docker_engine(
        "run", "--rm", "--read-only", "--tmpfs", TMP, "--entrypoint", "/docker-entrypoint.d/20-envsubst-on-templates.sh",
        project_images.frontend, check=False,
    )  # fmt: skip
    assert "/etc/nginx/conf.d is not writable" in result.stdout


@pytest.mark.parametrize(
    ("official", "command", "expected"),
    [
        ("python:3.11.14-slim-bookworm", ["sh", "-c", "readlink -f /usr/local/bin/python; id -u; python -c 'import ssl, venv'"], "/usr/bin/python3.11\n0\n"),
        ("nginxinc/nginx-unprivileged:1.28.3-alpine", ["sh", "-c", "id -u; id -g; nginx -T 2>/dev/null | grep -c 'pid        /tmp/nginx.pid'"], "101\n101\n1\n"),
        ("postgres:17.6-bookworm", ["sh", "-c", "id -u postgres; id -g postgres; echo $PGDATA; command -v initdb"], "999\n999\n/var/lib/postgresql/data\n/usr/lib/postgresql/15/bin/initdb\n"),
    ],
)  # fmt: skip
def test_the_stand_ins_keep_the_official_paths_and_users(
    docker_engine: Engine, standin_bases: Bases, official: str, command: list[str], expected: str
) -> None:
    result = docker_engine("run", "--rm", "--entrypoint", command[0], standin_bases.substitute(official), *command[1:])
    assert result.stdout == expected


def test_the_postgres_stand_in_initialises_as_the_official_entrypoint_does(
    docker_engine: Engine, standin_bases: Bases, network: str
) -> None:
    """No password: refused with a reason. With one: the user, the database, and password logins from other hosts."""
    image = standin_bases.substitute("postgres:17.6-bookworm")
    refused = docker_engine("run", "--rm", "--user", "999:999", image, check=False, timeout=60)
    assert refused.returncode == 1 and "POSTGRES_PASSWORD is not set" in refused.stderr
    password = secrets.token_hex(8)
    with docker_engine.container(
        image, "--network", network, "-e", "POSTGRES_USER=digit", "-e", f"POSTGRES_PASSWORD={password}",
        "-e", "POSTGRES_DB=feedback",
    ) as db:  # fmt: skip
        address = db.address(network)
        db.wait_until("pg_isready", "-q", "-h", "127.0.0.1", "-U", "digit")
        remote = docker_engine(
            "run", "--rm", "--network", network, "-e", f"PGPASSWORD={password}", "--entrypoint", "psql", image,
            "-h", address, "-U", "digit", "-d", "feedback", "-tAc", "SELECT current_user, current_database()",
        )  # fmt: skip
        assert remote.stdout.strip() == "digit|feedback"
        wrong = docker_engine(
            "run", "--rm", "--network", network, "-e", "PGPASSWORD=wrong", "--entrypoint", "psql", image,
            "-h", address, "-U", "digit", "-d", "feedback", "-c", "SELECT 1", check=False,
        )  # fmt: skip
        assert "password authentication failed" in wrong.stderr
