"""The distributed set-up: docker-compose.yml, Dockerfile and .dockerignore.

The same structural checks run twice: on the file as written (parsed with PyYAML, so they run
everywhere), and on what `docker compose config` makes of it after interpolation, which is what
`docker compose up` will run. The second needs a compose client (docker's plugin, or the
standalone docker-compose that scripts/setup installs; no engine); where neither is installed it
is skipped, unless REQUIRE_DOCKER_COMPOSE=1 (CI) turns the skip into a failure (README,
"Distributed set-up (docker compose)").
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVICES = {"postgres", "redis", "migrate", "worker", "beat", "mailpit", "web", "proxy"}
APP_SERVICES = ("migrate", "worker", "beat", "web")
# migrate runs to completion (worker and beat wait for that); every other service stays up and
# says whether it is healthy, with a check of its own kind.
HEALTHCHECKS = {
    "postgres": ("pg_isready",),
    "redis": ("redis-cli", "ping"),
    "mailpit": ("/mailpit", "readyz"),
    "worker": ("celery", "inspect ping", "HOSTNAME"),
    "beat": ("database_url", "select 1", "ensure_connection"),
    "web": ("urlopen", "http://127.0.0.1:8000/healthz"),
    "proxy": ("wget", "http://127.0.0.1:2019/config/"),
}
# Secrets the file must demand from the environment; `docker compose` refuses to run without.
REQUIRED = ("DISTRIBUTOR_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD")
DUMMY = {name: f"dummy-{name.lower().replace('_', '-')}-7f3a9c" for name in REQUIRED}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")
URL_PASSWORD = re.compile(r"://[^:/@]*:(?P<password>[^@]*)@")

SKIP_REASON = (
    "tests/test_compose.py skips where the docker compose client is not installed: {why} "
    "(README, 'Distributed set-up (docker compose)'; REQUIRE_DOCKER_COMPOSE=1 makes this fail)"
)


# --- the checks, on either form of the file -------------------------------------------------


def healthcheck_text(service: dict[str, Any]) -> str:
    test = service.get("healthcheck", {}).get("test")
    return test if isinstance(test, str) else " ".join(test or [])


def check_structure(config: dict[str, Any]) -> None:
    services = config["services"]
    assert set(services) >= SERVICES, f"missing services: {SERVICES - set(services)}"

    for name, needles in HEALTHCHECKS.items():
        check = services[name].get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name}'s healthcheck is disabled"
        text = healthcheck_text(services[name])
        assert text and text.split()[0] != "NONE", f"{name}'s healthcheck has no test"
        for needle in needles:
            assert needle in text, f"{name}'s healthcheck {text!r} lacks {needle!r}"

    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")

    # The worker scales: nothing that two copies of it could not both have.
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container_name stops --scale worker=N"
    assert not worker.get("ports"), "published ports clash when the worker is scaled"
    assert "worker" in worker["command"]
    # Exactly one beat.
    beat = services["beat"]
    replicas = (beat.get("deploy") or {}).get("replicas", beat.get("scale"))
    assert replicas == 1, "beat must run exactly once"
    assert beat["command"] == ["beat"]
    assert not any("--beat" in part for part in worker["command"]), "beat runs on its own"

    # The schema is migrated once, before anything uses it.
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate.get("restart", "no") == "no", "a one-shot service must not restart"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    # The web server: on every interface inside its container, published only on the bind
    # address, started once the schema is migrated.
    web = services["web"]
    assert web["command"] == ["web", "--host", "0.0.0.0"]
    [published] = web["ports"]
    spec = (
        published
        if isinstance(published, str)
        else f"{published.get('host_ip', '')}:{published.get('published')}:{published['target']}"
    )
    host, _, target = spec.removesuffix("/tcp").rpartition(":")
    assert target == "8000", spec
    assert host.startswith(("${DISTRIBUTOR_BIND_ADDRESS:-127.0.0.1}:", "127.0.0.1:")), spec

    for name in ("worker", "beat", "web"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name

    # One image, configured from the environment alone.
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1, f"migrate, worker and beat run different images: {images}"
    for name in APP_SERVICES:
        service = services[name]
        assert service.get("build"), f"{name} does not build the Dockerfile"
        environment = service["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql+psycopg://"), name
        assert environment["CELERY_BROKER_URL"].startswith("redis://"), name
        assert "DISTRIBUTOR_SECRET_KEY" in environment, name


def load_raw() -> dict[str, Any]:
    config = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(config, dict)
    return config


# --- always: the file as written --------------------------------------------------------------


def test_compose_file_structure() -> None:
    check_structure(load_raw())


def test_compose_file_passes_every_setting() -> None:
    """Each variable .env.example documents reaches the application containers."""
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    # REDIS_URL defaults to the broker's Redis, which is what the set-up wants.
    documented -= {"REDIS_URL"}
    services = load_raw()["services"]
    for name in APP_SERVICES:
        missing = documented - set(services[name]["environment"])
        assert not missing, f"{name} does not get {sorted(missing)} from the environment"


def test_the_web_service_believes_its_proxies_only() -> None:
    """The `proxy` service (Caddy, at a fixed address) and a proxy on the host (which reaches the
    published port from the network's gateway): those addresses, and no other, are trusted for
    X-Forwarded-For, so each reader has a rate limit of their own and nobody else can claim an
    address."""
    config = load_raw()
    (subnet,) = config["networks"]["default"]["ipam"]["config"]
    forwarded = config["services"]["web"]["environment"]["FORWARDED_ALLOW_IPS"]
    match = INTERPOLATION.fullmatch(forwarded)
    assert match and match["name"] == "FORWARDED_ALLOW_IPS" and match["op"] == ":-"
    proxy = config["services"]["proxy"]
    address = proxy["networks"]["default"]["ipv4_address"]
    assert match["arg"].split(",") == [address, subnet["gateway"]]
    network = ipaddress.ip_network(subnet["subnet"])
    assert ipaddress.ip_address(subnet["gateway"]) in network
    assert ipaddress.ip_address(address) in network
    # It is the https proxy in front of web, with the Caddyfile of deploy/.
    assert proxy["image"].startswith("caddy:")
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text(encoding="utf-8")
    assert "reverse_proxy web:8000" in caddyfile
    assert "header_up X-Forwarded-For {remote_host}" in caddyfile


def test_compose_file_holds_no_secret() -> None:
    """Secrets come from the environment: required (`:?`), never with a default in the file."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    uses: dict[str, set[str]] = {}
    for match in INTERPOLATION.finditer(text):
        name, op, arg = match["name"], match["op"] or "", match["arg"]
        uses.setdefault(name, set()).add(op)
        if SECRET_NAME.search(name) and op in ("-", ":-", "+", ":+"):
            assert not arg, f"${{{name}}} has a default in the file: {match[0]}"
    for name in REQUIRED:
        assert uses.get(name) == {":?"}, f"{name} must always be required (${{{name}:?…}})"

    services = load_raw()["services"]
    for service_name, service in services.items():
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), f"{service_name}: write environment as a mapping"
        for key, value in environment.items():
            value = str(value)
            if SECRET_NAME.search(key):
                assert INTERPOLATION.fullmatch(value), f"{service_name}.{key} is written in clear"
            # A password inside a URL (user:password@host) must be a variable too.
            url = URL_PASSWORD.search(INTERPOLATION.sub("VARIABLE", value))
            if url:
                assert url["password"] == "VARIABLE", f"{service_name}.{key} has a password"
    command = services["redis"]["command"]
    password = command[command.index("--requirepass") + 1]
    assert INTERPOLATION.fullmatch(password), "the Redis password is written in clear"


def test_compose_file_escapes_container_variables() -> None:
    """`$$` leaves a variable to the container's shell; a lone `$` is compose's (the host's)."""
    services = load_raw()["services"]
    for name in ("postgres", "worker"):
        text = healthcheck_text(services[name])
        assert "$$" in text and not re.search(r"(?<!\$)\$(?!\$)", text), text


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [
        line.split(None, 1)
        for line in text.splitlines()
        if line.strip() and not line.startswith((" ", "#"))
    ]
    bases = [argument.split()[0] for keyword, argument in instructions if keyword == "FROM"]
    assert bases and bases[-1] == "python:3.11-slim", f"the image is not python:3.11-slim: {bases}"
    assert re.search(r"pip install \.(\s|$)", text), "the project is installed with pip install ."
    users = [argument.strip() for keyword, argument in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as root"
    assert ["ENTRYPOINT", '["distributor"]'] in instructions
    # Nothing fetched but PyPI and Debian packages (nor a BuildKit frontend image).
    assert not re.search(r"\b(curl|wget|git clone)\b|^ADD\s+https?:", text, re.MULTILINE)
    assert "# syntax=" not in text
    ignored = DOCKERIGNORE.read_text(encoding="utf-8").split()
    assert ".env" in ignored and ".git" in ignored and ".venv" in ignored


# --- where the docker compose client exists: what compose makes of it ------------------------


def _compose_command() -> tuple[list[str] | None, str]:
    """The compose client: docker's plugin (`docker compose`), else the standalone
    `docker-compose` (Debian's package, which scripts/setup installs); or why there is none."""
    docker = shutil.which("docker")
    if docker is not None:
        try:
            result = subprocess.run(
                [docker, "compose", "version"], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return None, f"`docker compose version` failed ({error})"
        if result.returncode == 0:
            return [docker, "compose"], ""
    standalone = shutil.which("docker-compose")
    if standalone is not None:
        return [standalone], ""
    return None, "neither the docker compose plugin nor docker-compose is installed"


@pytest.fixture(scope="module")
def compose() -> list[str]:
    command, why = _compose_command()
    if command is None:
        message = SKIP_REASON.format(why=why)
        if os.environ.get("REQUIRE_DOCKER_COMPOSE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return command


def compose_config(
    compose: list[str], tmp_path: Path, **overrides: str | None
) -> subprocess.CompletedProcess[str]:
    """`docker compose config` with only DUMMY (and overrides; None = unset) for the file's
    variables, and an empty env file so that a developer's .env is not read."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    used = {match["name"] for match in INTERPOLATION.finditer(text)}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in used and not key.startswith("COMPOSE_")
    }
    env.update(DUMMY)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env_file = tmp_path / "empty.env"
    env_file.write_text("", encoding="utf-8")
    command = [*compose, "--project-directory", str(ROOT), "--file", str(COMPOSE_FILE)]
    command += ["--env-file", str(env_file), "config"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)


def test_compose_config(compose: list[str], tmp_path: Path) -> None:
    result = compose_config(compose, tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)  # the plugin writes YAML, like docker-compose
    check_structure(config)

    # The secrets reach the containers from the environment, and only from there.
    file_text = COMPOSE_FILE.read_text(encoding="utf-8")
    for value in DUMMY.values():
        assert value not in file_text
    for name in APP_SERVICES:
        environment = config["services"][name]["environment"]
        assert environment["DISTRIBUTOR_SECRET_KEY"] == DUMMY["DISTRIBUTOR_SECRET_KEY"]
        assert f":{DUMMY['POSTGRES_PASSWORD']}@" in environment["DATABASE_URL"]
        assert f":{DUMMY['REDIS_PASSWORD']}@" in environment["CELERY_BROKER_URL"]
    postgres = config["services"]["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"] == DUMMY["POSTGRES_PASSWORD"]
    # $$HOSTNAME reached the container as $HOSTNAME, for its shell to expand.
    assert re.search(r"\$\{?HOSTNAME", healthcheck_text(config["services"]["worker"]))


@pytest.mark.parametrize("name", REQUIRED)
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_compose_config_requires_secret(
    compose: list[str], tmp_path: Path, name: str, value: str | None
) -> None:
    result = compose_config(compose, tmp_path, **{name: value})
    assert result.returncode != 0, f"docker compose config ran without {name}"
    assert name in result.stderr, result.stderr
