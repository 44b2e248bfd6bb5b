"""docker-compose.yml, checked without a container engine: valid against the Compose
specification, and every service's command, ports and environment in agreement with the app's
console script, its settings, deploy/nginx.conf, the Dockerfile and .env.example."""

import ipaddress
import re
import shlex
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError

from app.core.config import Settings
from tests.support.deploy import ROOT, parse_command, run_tool, settings_env_names
from tests.support.nginx import NGINX_CONF

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
APP_IMAGE = "mlops-platform:"
# ${NAME}, ${NAME:-default}, ${NAME:?error}; `$$` escapes a dollar for the container's shell.
VARIABLE = re.compile(r"(?<!\$)\$\{(?P<name>\w+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def app_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in services().items()
        if str(service.get("image", "")).startswith(APP_IMAGE)
    }


def env_example(include_commented: bool = False) -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if include_commented and line.startswith("# ") and "=" in line and " " not in line[2:]:
            line = line[2:]
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's own interpolation, with `variables` standing for the user's .env."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if name in variables:
            return variables[name]
        assert op == ":-", f"${{{name}}} has no default and .env.example does not set it"
        return str(arg)

    return VARIABLE.sub(substitute, value).replace("$$", "$")


def environment(service: dict[str, Any], variables: dict[str, str]) -> dict[str, str]:
    return {
        name: interpolate(str(value), variables)
        for name, value in service.get("environment", {}).items()
    }


def command(service: dict[str, Any]) -> list[str]:
    return [str(part) for part in service["command"]]


def nginx_conf() -> str:
    return NGINX_CONF.read_text()


def test_the_file_follows_the_compose_specification() -> None:
    result = run_tool(
        "check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE.name)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def stack_app_services() -> dict[str, dict[str, Any]]:
    """The app's services of the default stack (not the demo's)."""
    return {name: s for name, s in app_services().items() if not s.get("profiles")}


def demo_commands() -> list[list[str]]:
    """The `mlops` commands the demo's `sh -c` runs, in order."""
    shell, flag, script = command(services()["demo"])
    assert (shell, flag) == ("sh", "-c")
    steps = interpolate(script, {}).split("&&")
    return [shlex.split(step.strip().removeprefix("exec ")) for step in steps]


def test_the_stack_has_every_service_the_readme_promises() -> None:
    expected = {"postgres", "redis", "migrate", "api", "worker", "nginx", "ollama", "ollama-pull"}
    assert expected | {"demo"} <= set(services())
    assert set(stack_app_services()) == {"migrate", "api", "worker"}
    # Ollama stays out of the default stack: it is large and gemma3 is optional.
    assert services()["ollama"]["profiles"] == services()["ollama-pull"]["profiles"] == ["ollama"]
    assert services()["demo"]["profiles"] == ["demo"]


def test_every_app_command_is_one_the_cli_accepts() -> None:
    commands = {name: parse_command(command(s)).command for name, s in stack_app_services().items()}
    assert commands == {"migrate": "migrate", "api": "serve", "worker": "worker"}
    demo = [parse_command(step) for step in demo_commands()]
    assert [step.command for step in demo] == ["migrate", "demo-seed", "serve"]
    assert demo[-1].no_migrate and demo[-1].host == "0.0.0.0"
    assert parse_command(command(services()["api"])).no_migrate, "the migrate service migrates"


def test_every_app_variable_is_a_setting_and_the_whole_environment_loads() -> None:
    variables = {**env_example(), "SECRET_KEY": "0123456789abcdef" * 3}
    for name, service in app_services().items():
        env = environment(service, variables)
        unknown = set(env) - settings_env_names()
        assert not unknown, f"{name}: the app reads no {sorted(unknown)}"
        settings = Settings(_env_file=None, **{key.lower(): value for key, value in env.items()})  # type: ignore[arg-type]
        assert settings.environment == "production", name
        # The demo keeps to a database of its own, and serves /predict to anyone, knowingly.
        demo = name == "demo"
        assert settings.is_sqlite == demo, name
        assert settings.public_predict == settings.public_predict_acknowledged == demo, name
        assert (settings.default_deployment_id is not None) == demo, name


def test_the_example_secret_is_refused_so_nobody_runs_the_placeholder() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production", secret_key=env_example()["SECRET_KEY"])  # type: ignore[call-arg]


def test_every_variable_compose_reads_is_in_env_example_and_nothing_else_is() -> None:
    used = {match["name"]: match["op"] for match in VARIABLE.finditer(COMPOSE.read_text())}
    required = {name for name, op in used.items() if op != ":-"}
    assert required <= set(env_example()), "required variables must be set in .env.example"
    assert set(env_example(include_commented=True)) == set(used)


def test_nginx_is_the_only_published_port_and_listens_where_nginx_conf_says() -> None:
    stack = {name: service for name, service in services().items() if not service.get("profiles")}
    published = {name for name, service in stack.items() if service.get("ports")}
    assert published == {"nginx"}
    # The demo, run alone, publishes the port nginx would: `curl localhost/predict`.
    (demo_mapping,) = services()["demo"]["ports"]
    host_port, demo_port = interpolate(str(demo_mapping), {}).rsplit(":", 1)
    assert int(demo_port) == parse_command(demo_commands()[-1]).port
    assert host_port == interpolate(str(services()["nginx"]["ports"][0]), {}).rsplit(":", 1)[0]
    (mapping,) = services()["nginx"]["ports"]
    container_port = int(str(mapping).rsplit(":", 1)[1])
    assert re.search(rf"^\s*listen {container_port};", nginx_conf(), re.MULTILINE)
    mounts = services()["nginx"]["volumes"]
    assert f"./{NGINX_CONF.relative_to(ROOT).as_posix()}:/etc/nginx/nginx.conf:ro" in mounts


def test_nginx_reaches_the_api_on_the_port_it_serves_and_checks_its_health() -> None:
    api = services()["api"]
    serve = parse_command(command(api))
    assert serve.host == "0.0.0.0"
    upstream = re.search(r"server (\S+):(\d+);", nginx_conf())
    assert upstream is not None
    assert (upstream[1], int(upstream[2])) == ("api", serve.port)
    # The image's HEALTHCHECK (kept by compose) probes the port the API serves.
    assert f"127.0.0.1:{serve.port}/health" in (ROOT / "Dockerfile").read_text()
    assert services()["nginx"]["depends_on"]["api"]["condition"] == "service_healthy"


def test_only_nginx_may_set_the_client_address() -> None:
    env = environment(services()["api"], env_example())
    nginx_address = services()["nginx"]["networks"]["backend"]["ipv4_address"]
    assert env["FORWARDED_ALLOW_IPS"] == nginx_address
    (subnet,) = compose()["networks"]["backend"]["ipam"]["config"]
    assert ipaddress.ip_address(nginx_address) in ipaddress.ip_network(subnet["subnet"])


def test_addresses_in_the_environment_name_services_of_the_stack() -> None:
    env = environment(services()["api"], env_example())
    for variable, service, port in [
        ("DATABASE_URL", "postgres", 5432),
        ("RATE_LIMIT_STORAGE_URI", "redis", 6379),
        ("OLLAMA_HOST", "ollama", 11434),
    ]:
        address = urlsplit(env[variable])
        assert (address.hostname, address.port) == (service, port), variable
    assert env["WORKER_IN_PROCESS"] == "false", "models run in the worker service only"
    database = urlsplit(env["DATABASE_URL"])
    postgres = environment(services()["postgres"], env_example())
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"]
    assert database.path == "/" + postgres["POSTGRES_DB"]


def test_the_worker_is_probed_on_its_metrics_port_and_may_finish_its_work() -> None:
    worker = services()["worker"]
    port = parse_command(command(worker)).metrics_port
    assert port is not None
    assert f"127.0.0.1:{port}/" in " ".join(worker["healthcheck"]["test"])
    assert int(str(worker["stop_grace_period"]).rstrip("s")) >= 30


def test_start_up_order_migrates_before_anything_serves() -> None:
    for name in ("api", "worker"):
        condition = services()[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert services()["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services()["migrate"]["restart"] == "no"
    assert services()["ollama-pull"]["depends_on"]["ollama"]["condition"] == "service_healthy"


def test_state_lives_in_named_volumes() -> None:
    declared = set(compose()["volumes"])
    named = {
        str(volume).split(":", 1)[0]
        for service in services().values()
        for volume in service.get("volumes", [])
        if not str(volume).startswith(".")
    }
    assert named == declared
    assert any(str(v).startswith("postgres-data:") for v in services()["postgres"]["volumes"])
    assert any(str(v).startswith("ollama:") for v in services()["ollama"]["volumes"])


def test_the_ollama_model_pulled_is_the_one_the_app_asks_for() -> None:
    pulled = interpolate(services()["ollama-pull"]["entrypoint"][-1], {})
    asked = interpolate(str(compose()["x-app"]["environment"]["OLLAMA_MODEL"]), {})
    assert pulled == asked == Settings(_env_file=None).ollama_model  # type: ignore[call-arg]
