"""The compose file's demo, run here as its container would run it (no container engine): the
`demo` service's own environment and commands, with only the database file and the port moved.
After it starts, `curl localhost/predict` with no account answers the classic body."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.test_compose import demo_commands, env_example, environment, services
from tests.support.processes import free_port, stop, wait_until_up

SECRET = "demo-secret-0123456789abcdefghijklmnopqrstuvwxyz"


def as_here(step: list[str], port: int) -> list[str]:
    """`mlops ...` through this interpreter, serving on `port` of 127.0.0.1."""
    argv = [sys.executable, "-m", "app.cli", *step[1:]]
    if "--port" in argv:
        argv[argv.index("--port") + 1] = str(port)
        argv[argv.index("--host") + 1] = "127.0.0.1"
    return argv


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """(base URL, what each seeding printed) of the demo started as compose starts it, twice
    seeded (a restart of the container seeds again)."""
    env = environment(services()["demo"], {**env_example(), "SECRET_KEY": SECRET})
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path}/demo.db", "MOCK_DELAY_MAX": "0.2"}
    env |= {"MOCK_DELAY_MIN": "0.1", "PATH": str(Path(sys.executable).parent)}
    port = free_port()
    *preparation, serve = [as_here(step, port) for step in demo_commands()]
    printed = []
    for argv in [*preparation, preparation[-1]]:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        # Its own line, among the JSON log lines.
        printed.append("".join(line for line in done.stdout.splitlines() if line[:1] != "{"))
    with (tmp_path / "demo.log").open("wb") as log:
        server = subprocess.Popen(serve, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server)
        yield f"http://127.0.0.1:{port}", printed
    finally:
        stop(server)


def test_the_demo_answers_predict_with_no_account(demo: tuple[str, list[str]]) -> None:
    base_url, printed = demo
    deployment_id = environment(services()["demo"], {"SECRET_KEY": SECRET})["DEFAULT_DEPLOYMENT_ID"]
    assert printed[1].startswith(f"seeded: deployment 'demo' (mock, running) id {deployment_id}")
    assert printed[2].startswith("already there: deployment 'demo'")
    with httpx.Client(base_url=base_url, timeout=30) as anyone:
        answer = anyone.post("/predict", json={"input": "hello"})
        assert answer.status_code == 200, answer.text
        assert set(answer.json()) == {"input", "result"} and answer.json()["input"] == "hello"
        accepted = anyone.post("/predict", json={"text": "x"}, headers={"Async-Mode": "true"})
        assert accepted.status_code == 202, accepted.text
        listed = anyone.get(f"/api/v1/deployments/{deployment_id}/predictions")
        assert listed.status_code == 401, "the platform's own routes still need an account"
