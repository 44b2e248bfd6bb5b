"""The Dockerfile, checked without a container engine: hadolint clean, the stages the README
promises, a non-root user, a health check on the port the image serves, torch only in the `ml`
target, and every install from the lock."""

import json
import re
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser

from app.db import migrations
from tests.support.deploy import ROOT, parse_command, run_tool

BASE_IMAGE = "python:3.12-slim"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]


def stages() -> dict[str, Stage]:
    parsed: dict[str, Stage] = {}
    current: Stage | None = None
    for item in DockerfileParser(str(ROOT / "Dockerfile")).structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            base, _, name = value.partition(" AS ")
            current = parsed[name.strip()] = Stage(name.strip(), base.strip())
        elif current is not None and instruction != "COMMENT":
            current.instructions.append((instruction, value))
    return parsed


def chain(stage: str) -> list[Stage]:
    """The stage and those it is built FROM, nearest first."""
    all_stages = stages()
    found = [all_stages[stage]]
    while found[-1].base in all_stages:
        found.append(all_stages[found[-1].base])
    return found


def inherited(stage: str, instruction: str) -> list[str]:
    return [value for ancestor in reversed(chain(stage)) for value in ancestor.values(instruction)]


def copied_from(stage: str) -> set[str]:
    """The stages whose files `stage` copies."""
    sources = {re.search(r"--from=(\S+)", value) for value in inherited(stage, "COPY")}
    return {match.group(1) for match in sources if match}


def test_hadolint_finds_nothing() -> None:
    result = run_tool("hadolint", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_stages_build_on_python_312_slim_and_the_default_target_is_last() -> None:
    all_stages = stages()
    assert list(all_stages)[-1] == "runtime", "the default target is the last stage"
    assert {"builder", "builder-ml", "runtime", "ml"} <= set(all_stages)
    for stage in all_stages.values():
        assert stage.base in {BASE_IMAGE, *all_stages}, stage


def test_final_images_run_as_a_non_root_user() -> None:
    for target in ("runtime", "ml"):
        users = inherited(target, "USER")
        assert users, target
        uid = users[-1].split(":")[0]
        assert uid.isdigit() and int(uid) != 0, (target, users)


def test_the_health_check_probes_health_on_the_port_the_image_serves() -> None:
    for target in ("runtime", "ml"):
        (healthcheck,) = inherited(target, "HEALTHCHECK")
        (command,) = inherited(target, "CMD")
        serve = parse_command(json.loads(command))  # the exec form is a JSON array
        assert serve.command == "serve" and serve.host == "0.0.0.0"
        assert f"http://127.0.0.1:{serve.port}/health" in healthcheck
        assert str(serve.port) in inherited(target, "EXPOSE")


def test_only_the_ml_target_installs_torch() -> None:
    def installs(stage: str) -> str:
        return " ".join(inherited(stage, "RUN"))

    default_sources = copied_from("runtime")
    assert "builder-ml" not in default_sources
    for source in default_sources:
        assert "torch" not in installs(source) and "[ml]" not in installs(source), source
    assert "builder-ml" in copied_from("ml")
    assert "torch==" in installs("builder-ml") and "[ml]" in installs("builder-ml")


def test_every_install_comes_from_the_lock_and_torch_matches_it() -> None:
    runs = [value for stage in stages().values() for value in stage.values("RUN")]
    installs = [part for run in runs for part in run.split("&&") if "pip install" in part]
    assert installs
    for install in installs:
        pinned_torch = '"torch==${TORCH_VERSION}"' in install
        assert "--constraint constraints.txt" in install or pinned_torch, install
    (version,) = [
        item["value"].split("=", 1)[1]
        for item in DockerfileParser(str(ROOT / "Dockerfile")).structure
        if item["instruction"] == "ARG" and item["value"].startswith("TORCH_VERSION=")
    ]
    assert f"torch=={version}" in (ROOT / "constraints.txt").read_text().split()
    assert f"TORCH := torch=={version}" in (ROOT / "Makefile").read_text()


def test_the_final_images_hold_what_migrations_need_where_the_app_looks() -> None:
    # app/db/migrations.py finds alembic.ini and alembic/ beside the package: /app in the image.
    relative = {
        path.relative_to(migrations.PROJECT_ROOT).as_posix()
        for path in (migrations.PROJECT_ROOT / "alembic.ini", migrations.PROJECT_ROOT / "alembic")
    }
    for target in ("runtime", "ml"):
        assert inherited(target, "WORKDIR")[-1] == "/app"
        destinations = {value.split()[-1] for value in inherited(target, "COPY")}
        assert {f"/app/{path}" for path in relative} | {"/app/app"} <= destinations, target
    assert stages()["builder"].values("WORKDIR") == ["/app"], "built where it runs (editable)"


def test_the_build_context_is_an_allow_list_that_holds_every_copied_file() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "everything is excluded unless named: no .env or .git in the context"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for stage in stages().values():
        for value in stage.values("COPY"):
            if "--from=" in value:
                continue
            for source in value.split()[:-1]:
                assert source in allowed, f"COPY {source}: not in .dockerignore's allow-list"
                assert (ROOT / source).exists(), source
