"""Drill: schemathesis fuzzes every operation of the live app's `/openapi.json` (`mlops serve` on a
PostgreSQL database of its own, with its prediction worker), signed in as the admin of an
organization that has a cluster, deployments and a prediction, whose ids are bound to the path
parameters nine times in ten (tests/drills/fuzz_hooks.py); the classic `/predict` routes serve the
deployment that has the prediction (DEFAULT_DEPLOYMENT_ID). Schemathesis's checks: no 5xx, every
status, content type, header and body as the schema publishes them, invalid input refused,
`405` with the full `Allow` list for methods a path lacks, no operation that ignores the session;
and ours: every error in the contract's shape with a listed code. Afterwards no server log holds
a traceback and every cluster's books are exact.

Bounded for CI: `FUZZ_EXAMPLES` examples per operation and phase (5 here). The long run is
`FUZZ_EXAMPLES=200 pytest tests/drills/test_fuzz.py -s` (docs/SECURITY.md)."""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.api import PASSWORD
from tests.support.books import check_books
from tests.support.databases import create_postgres_database, drop_postgres_database
from tests.support.processes import free_port, service_env, start_api, stop

pytestmark = pytest.mark.stack

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
REPOSITORY = Path(__file__).resolve().parents[2]
# Schemathesis's checks that assume what this API does not promise: that any valid input succeeds
# (a valid id of another tenant is 404 by design), or links between operations (none published).
NOT_PROMISED = "positive_data_acceptance,use_after_free,ensure_resource_availability"


BOUND_ROUTES = (
    "/api/v1/organizations/{org_id}",
    "/api/v1/clusters/{cluster_id}",
    "/api/v1/deployments/{deployment_id}",
    "/api/v1/predictions/{prediction_id}",
    "/predict/{prediction_id}",
)


def requests_served(base_url: str) -> dict[tuple[str, str, int], float]:
    """(method, route template, status): count, from the service's own metrics."""
    text = httpx.get(f"{base_url}/metrics").text
    return {
        (
            sample.labels["method"],
            sample.labels["route"],
            int(sample.labels["status"]),
        ): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "http_requests"
        for sample in family.samples
        if sample.name == "http_requests_total"
    }


def build_world(base_url: str) -> dict[str, Any]:
    """An admin with an organization, a cluster, running deployments and a prediction."""
    client = httpx.Client(base_url=base_url, timeout=30)
    credentials = {"username": "fuzz-admin", "password": PASSWORD}
    user = client.post(
        "/api/v1/auth/register", json={**credentials, "email": "fuzz@example.com"}
    ).json()
    client.post("/api/v1/auth/login", json=credentials).raise_for_status()
    org = client.post("/api/v1/organizations", json={"name": "Fuzz"}).json()
    cluster = client.post(
        f"/api/v1/organizations/{org['id']}/clusters",
        json={"name": "pool", "capacity": {"cpu": 64, "ram_gb": 64, "gpu": 2}},
    ).json()
    deployments = [
        client.post(
            f"/api/v1/clusters/{cluster['id']}/deployments",
            json={"name": f"d{i}", "resources": {"cpu": 1, "ram_gb": 1, "gpu": 0}},
        ).json()
        for i in range(6)  # the fuzz may complete or cancel some; the others keep running
    ]
    prediction = client.post(
        f"/api/v1/deployments/{deployments[0]['id']}/predict",
        json={"input": "hello"},
        headers={"Async-Mode": "true"},
    ).json()
    client.close()
    ids = {
        "default_deployment_id": deployments[0]["id"],
        "org_id": org["id"],
        "cluster_id": cluster["id"],
        "deployment_id": deployments[-1]["id"],
        "prediction_id": prediction["prediction_id"],
        "user_id": user["id"],
    }
    return {"base_url": base_url, "credentials": credentials, "ids": ids}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    """(the world, its database): the world is built through a first server, then the app is
    served again with DEFAULT_DEPLOYMENT_ID on the deployment that has the prediction, so that
    the classic `/predict` routes are fuzzed past their configuration too."""
    name, database_url = create_postgres_database()
    env = service_env(database_url, MOCK_DELAY_MIN="0", MOCK_DELAY_MAX="0.01")
    port = free_port()
    server = start_api(env, port, tmp_path / "builder.log")
    try:
        world = build_world(f"http://127.0.0.1:{port}")
    finally:
        stop(server)
    port = free_port()
    env["DEFAULT_DEPLOYMENT_ID"] = world["ids"]["default_deployment_id"]
    server = start_api(env, port, tmp_path / "api.log")
    try:
        yield {**world, "base_url": f"http://127.0.0.1:{port}"}, database_url
    finally:
        stop(server)
        drop_postgres_database(name)


def test_fuzzing_every_operation_finds_no_5xx_and_no_schema_violation(
    live: tuple[dict[str, Any], str], tmp_path: Path
) -> None:
    world, database_url = live
    base_url = world["base_url"]
    command = [str(Path(sys.executable).parent / "st"), "run", f"{base_url}/openapi.json"]
    command += ["--checks", "all", "--exclude-checks", NOT_PROMISED]
    command += ["--max-examples", str(EXAMPLES), "--seed", "20261203", "--workers", "2"]
    command += ["--report", "ndjson", "--report-dir", str(tmp_path / "report")]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.drills.fuzz_hooks",
        "FUZZ_WORLD": json.dumps(world),
        "PYTHONPATH": str(REPOSITORY),
        "NO_COLOR": "1",
    }
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600 + 30 * EXAMPLES
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-8000:]
    cases = re.search(r"(\d+) generated", output)
    assert cases and int(cases.group(1)) > 0, "nothing was fuzzed"
    served = requests_served(base_url)
    statuses = [status for (_, _, status), count in served.items() for _ in range(int(count))]
    assert not [key for key in served if key[2] >= 500], served
    # The bound ids reached the handlers: each id's own GET answered 200 at least once.
    for route in BOUND_ROUTES:
        answered = {key: n for key, n in served.items() if key[1] == route}
        assert served.get(("GET", route, 200)), f"no 200 from GET {route}: {answered}"
    print(
        f"fuzzing drill: {cases.group(1)} test cases, {len(statuses)} requests served, "
        f"{sum(s < 300 for s in statuses)} 2xx, {sum(400 <= s < 500 for s in statuses)} 4xx, "
        f"{sum(s >= 500 for s in statuses)} 5xx"
    )
    log = (tmp_path / "api.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    check_books(database_url)
