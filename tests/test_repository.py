"""The repository stands alone: no file points outside it, every link in its documents resolves,
the README's commands name things that exist, and its curl tour runs as written."""

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.models.organization import Role
from app.runtimes.catalog import MODELS
from tests.support.deploy import ROOT, parse_command
from tests.support.processes import free_port, service_env, start_api, stop

README = ROOT / "README.md"
# A path that leaves the repository: the workspace around it, or a parent folder's files.
OUTSIDE = re.compile(r"\.\./shared|/work/|\.\./\.\./|\.library")
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
CODE_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    files = []
    for name in listed:
        path = ROOT / name
        if path.is_file() and b"\0" not in path.read_bytes()[:4096]:
            files.append(path)
    assert len(files) > 50
    return files


def readme_commands() -> list[list[str]]:
    """Every command line of the README's shell blocks, continuation lines joined."""
    commands = []
    for block in CODE_BLOCK.findall(README.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            for part in re.split(r"\s*&&\s*", line):
                if part and not part.startswith("#"):
                    argv = shlex.split(part, comments=True)
                    while argv and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):
                        argv = argv[1:]  # `NAME=value command ...`: the command
                    commands.append(argv)
    return commands


def test_no_file_points_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in tracked_text_files()
        if path.name != "test_repository.py"
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


def test_every_link_in_the_documents_resolves_inside_the_repository() -> None:
    documents = [path for path in tracked_text_files() if path.suffix == ".md"]
    assert README in documents and ROOT / "docs" / "API.md" in documents
    for document in documents:
        for target in MARKDOWN_LINK.findall(document.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                assert "127.0.0.1" in target or "localhost" in target, (document, target)
                continue
            resolved = (document.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), (document, target)
            assert resolved.exists(), f"{document.relative_to(ROOT)} links to missing {target}"


def test_the_readme_links_the_documents_a_reader_needs() -> None:
    text = README.read_text()
    for document in ("docs/API.md", "docs/ARCHITECTURE.md", "docs/BENCHMARKS.md"):
        assert f"]({document})" in text, document


def test_the_readme_commands_name_things_that_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    seen = set()
    for argv in readme_commands():
        program = Path(argv[0]).name
        seen.add(program)
        if program == "make":
            targets = [a for a in argv[1:] if "=" not in a] or ["run"]
            for target in targets:
                assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), argv
        elif program == "mlops":
            parse_command(argv)
        elif argv[:2] == ["docker", "build"] and "--target" in argv:
            target = argv[argv.index("--target") + 1]
            assert f" AS {target}\n" in dockerfile, argv
        elif argv[:2] == ["docker", "compose"]:
            for option in ("--profile", "--scale"):
                if option in argv:
                    value = argv[argv.index(option) + 1].split("=")[0]
                    assert f"\n  {value}:" in compose or f"[{value}]" in compose, argv
        elif program in ("kubectl", "cp"):
            for argument in argv[1:]:
                if argument.startswith(("deploy/", ".env.example")):
                    assert (ROOT / argument).exists(), argv
    assert {"make", "docker", "kubectl", "cp", "curl"} <= seen


@pytest.fixture
def live_service(postgres_url: str, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    server = start_api(
        service_env(
            postgres_url, MOCK_DELAY_MIN="0.1", MOCK_DELAY_MAX="0.5", WORKER_IN_PROCESS="true"
        ),
        port,
        tmp_path / "api.log",
    )
    try:
        yield port
    finally:
        stop(server)


def test_the_readme_tour_runs_as_written(live_service: int, tmp_path: Path) -> None:
    (tour,) = [block for block in CODE_BLOCK.findall(README.read_text()) if "curl" in block][:1]
    script = tour.replace("localhost:8000", f"127.0.0.1:{live_service}")
    # The tour registers `ada`; a previous test's `ada` in the shared database would make it 409.
    script = script.replace('"ada"', f'"ada{live_service}"').replace("ada@", f"ada{live_service}@")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert '"role":"admin"' in output  # /auth/me lists the new organization
    # The last command polls the prediction: every id before it was real, or this would be 404.
    assert output.rstrip().endswith(('"code":"prediction_pending"}', '"status":"completed"}')) or (
        '"prediction_id"' in output.splitlines()[-1]
    ), output[-500:]


def test_the_readme_covers_the_basics_a_new_user_asks_about() -> None:
    text = README.read_text()
    basics = text[text.index("## The basics") : text.index("## Run the whole stack")]
    for model in MODELS:
        assert f"`{model}`" in basics, model
    for role in Role:
        assert f"`{role.value}`" in basics, role
    for must in (
        "10\u201317 s",  # an en dash, as the README writes ranges
        "higher wins",
        "prediction_pending",
        "PORT=",
        "createdb",
        ".env.example",
    ):
        assert must in basics, must
    assert "make worker" in basics and "make migrate" in basics


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("run PORT=9123 HOST=0.0.0.0", "mlops serve --host 0.0.0.0 --port 9123"),
        ("migrate", "mlops migrate"),
        ("worker", "mlops worker"),
    ],
)
def test_make_targets_run_what_the_readme_says(target: str, expected: str) -> None:
    dry_run = subprocess.run(
        ["make", "-n", *target.split()], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert expected in dry_run.stdout, dry_run.stdout
