"""The production topology on this machine: `mlops serve --workers 4` and two `mlops worker`
processes on PostgreSQL, Redis for the shared rate limits, and Debian's nginx in front with the
repository's deploy/nginx.conf. Everything goes through nginx, as in docker-compose.yml.

`pytest -m stack` runs these alone."""

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.load_drill.scene import churn_deployment
from tests.support.api import PASSWORD, assert_error, check_error_shape_hook
from tests.support.books import check_books
from tests.support.databases import create_postgres_database, drop_postgres_database
from tests.support.nginx import start_nginx
from tests.support.processes import free_port, service_env, start_api, start_worker, stop

pytestmark = pytest.mark.stack

API_PROCESSES = 4
WORKER_PROCESSES = 2
USERS = 8
CONCURRENCY = 32
REDIS_URL = "redis://127.0.0.1:6379/11"  # a database of its own: emptied at start
# The 500 requests of the load, by kind.
MIX = {
    "sign_in": 40,
    "create": 160,
    "complete": 60,
    "cancel": 20,
    "predict_sync": 60,
    "predict_async": 80,
    "list": 80,
}
EXPECTED = {
    "sign_in": {200},
    "create": {201},
    "complete": {200, 409},
    "cancel": {200, 409},
    "predict_sync": {200},
    "predict_async": {202},
    "list": {200},
}
Sample = tuple[str, str, str]  # method, route template, status: the labels of the counter


@dataclass
class Stack:
    base_url: str
    database_url: str
    logs: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    name, database_url = create_postgres_database()
    redis.Redis.from_url(REDIS_URL).flushdb()
    logs = tmp_path_factory.mktemp("stack")
    env = service_env(
        database_url,
        RATE_LIMIT_ENABLED="true",
        RATE_LIMIT_STORAGE_URI=REDIS_URL,
        FORWARDED_ALLOW_IPS="127.0.0.1",
        WORKER_IN_PROCESS="false",  # as in compose: only the worker processes run models
        MOCK_DELAY_MIN="0.05",
        MOCK_DELAY_MAX="0.5",
        DB_POOL_SIZE="4",
        DB_MAX_OVERFLOW="4",
    )
    processes = []
    try:
        api_port = free_port()
        processes.append(start_api(env, api_port, logs / "api.log", workers=API_PROCESSES))
        for i in range(WORKER_PROCESSES):
            processes.append(start_worker(env, logs / f"worker-{i}.log"))
        nginx, port = start_nginx(api_port, logs / "nginx")
        processes.append(nginx)
        yield Stack(f"http://127.0.0.1:{port}", database_url, logs)
    finally:
        for process in reversed(processes):
            stop(process)
        drop_postgres_database(name)


def client(stack: Stack, address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address` (any 127.x.y.z is this machine), so nginx
    sees a client of its own and passes it on in X-Forwarded-For."""
    return httpx.AsyncClient(
        base_url=stack.base_url,
        transport=httpx.AsyncHTTPTransport(local_address=address),
        timeout=60,
        event_hooks={"response": [check_error_shape_hook]},
    )


@dataclass
class Member:
    username: str
    address: str
    client: httpx.AsyncClient
    deployments: list[str] = field(default_factory=list)


@dataclass
class Scene:
    org_id: str
    churn: list[str]  # small clusters where creations preempt each other
    serving_deployment: str  # a mock deployment nobody can evict: predictions go here
    members: list[Member]


async def build_scene(stack: Stack) -> Scene:
    members = []
    for i in range(USERS):
        username = f"stack{i}-{random.randrange(10**9)}"
        address = f"127.0.0.{20 + i}"
        member = Member(username, address, client(stack, address))
        registered = await member.client.post(
            "/api/v1/auth/register",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text
        login = await member.client.post(
            "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        members.append(member)
    admin = members[0].client
    org = (await admin.post("/api/v1/organizations", json={"name": "Stack"})).json()
    for member in members[1:]:
        joined = await member.client.post(
            "/api/v1/organizations/join", json={"invite_code": org["invite_code"]}
        )
        assert joined.status_code == 200, joined.text

    async def cluster(name: str, cpu: int, gpu: int) -> str:
        response = await admin.post(
            f"/api/v1/organizations/{org['id']}/clusters",
            json={"name": name, "resources": {"cpu": cpu, "ram_gb": 8, "gpu": gpu}},
        )
        assert response.status_code == 201, response.text
        cluster_id: str = response.json()["id"]
        return cluster_id

    churn = [await cluster("churn-a", 4, 1), await cluster("churn-b", 4, 1)]
    serving_cluster = await cluster("serving", 8, 0)
    serving = await admin.post(
        f"/api/v1/clusters/{serving_cluster}/deployments",
        json={"name": "echo", "model": "mock", "resources": {"cpu": 1, "ram_gb": 1, "gpu": 0}},
    )
    assert serving.json()["status"] == "running", serving.text
    for member in members:  # something of their own to complete or cancel from the start
        for cluster_id in churn:
            filler = await member.client.post(
                f"/api/v1/clusters/{cluster_id}/deployments",
                json={"name": "filler", "resources": {"cpu": 1, "ram_gb": 0, "gpu": 0}},
            )
            assert filler.status_code == 201, filler.text
            member.deployments.append(filler.json()["id"])
    return Scene(org["id"], churn, serving.json()["id"], members)


@dataclass
class Load:
    sent: Counter[Sample] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    async_ids: list[str] = field(default_factory=list)

    def record(self, kind: str, method: str, route: str, response: httpx.Response) -> None:
        self.sent[(method, route, str(response.status_code))] += 1
        self.statuses.setdefault(kind, Counter())[response.status_code] += 1


async def fire(stack: Stack, scene: Scene, seed: int) -> Load:
    """The 500 requests of MIX, shuffled, CONCURRENCY at a time, each by one of the members."""
    rng = random.Random(seed)
    load = Load()
    members = scene.members
    # Sign-ins go round the members: RATE_LIMIT_LOGIN (10/minute) is per address, and a random
    # draw would now and then give one member ten of them.
    jobs = [
        (kind, members[i % len(members)] if kind == "sign_in" else rng.choice(members))
        for kind, count in MIX.items()
        for i in range(count)
    ]
    rng.shuffle(jobs)
    semaphore = asyncio.Semaphore(CONCURRENCY)
    predict_route = "/api/v1/deployments/{deployment_id}/predict"
    predict_path = f"/api/v1/deployments/{scene.serving_deployment}/predict"

    async def sign_in(member: Member) -> None:
        # A client of its own (a fresh cookie jar) from the member's own address.
        async with client(stack, member.address) as fresh:
            body = {"username": member.username, "password": PASSWORD}
            response = await fresh.post("/api/v1/auth/login", json=body)
        load.record("sign_in", "POST", "/api/v1/auth/login", response)

    async def create(member: Member) -> None:
        cluster_id = rng.choice(scene.churn)
        body = churn_deployment(rng)
        response = await member.client.post(f"/api/v1/clusters/{cluster_id}/deployments", json=body)
        load.record("create", "POST", "/api/v1/clusters/{cluster_id}/deployments", response)
        if response.status_code == 201:
            member.deployments.append(response.json()["id"])

    async def end(member: Member, action: str) -> None:
        target = rng.choice(member.deployments)
        response = await member.client.post(f"/api/v1/deployments/{target}/{action}")
        load.record(action, "POST", f"/api/v1/deployments/{{deployment_id}}/{action}", response)

    async def predict_sync(member: Member) -> None:
        response = await member.client.post(predict_path, json={"input": "hello"})
        load.record("predict_sync", "POST", predict_route, response)

    async def predict_async(member: Member) -> None:
        headers = {"Async-Mode": "true"}
        response = await member.client.post(predict_path, json={"input": "hi"}, headers=headers)
        load.record("predict_async", "POST", predict_route, response)
        if response.status_code == 202:
            load.async_ids.append(response.json()["prediction_id"])

    async def listing(member: Member) -> None:
        route, path = rng.choice(
            [
                (
                    "/api/v1/organizations/{org_id}/deployments",
                    f"/organizations/{scene.org_id}/deployments",
                ),
                (
                    "/api/v1/organizations/{org_id}/clusters",
                    f"/organizations/{scene.org_id}/clusters",
                ),
                (
                    "/api/v1/clusters/{cluster_id}/deployments",
                    f"/clusters/{scene.churn[0]}/deployments",
                ),
                ("/api/v1/auth/me", "/auth/me"),
            ]
        )
        response = await member.client.get(f"/api/v1{path}")
        load.record("list", "GET", route, response)

    actions: dict[str, Callable[[Member], Awaitable[None]]] = {
        "sign_in": sign_in,
        "create": create,
        "complete": lambda member: end(member, "complete"),
        "cancel": lambda member: end(member, "cancel"),
        "predict_sync": predict_sync,
        "predict_async": predict_async,
        "list": listing,
    }

    async def one(kind: str, member: Member) -> None:
        async with semaphore:
            await actions[kind](member)

    await asyncio.gather(*(one(kind, member) for kind, member in jobs))
    return load


async def request_counts(scraper: httpx.AsyncClient) -> Counter[Sample]:
    """`http_requests_total` as one scrape through nginx reports it, whichever process answers."""
    text = (await scraper.get("/metrics")).text
    counts: Counter[Sample] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                labels = sample.labels
                counts[(labels["method"], labels["route"], labels["status"])] += int(sample.value)
    return counts


def without_scrapes(counts: Counter[Sample]) -> Counter[Sample]:
    return Counter({labels: n for labels, n in counts.items() if labels[1] != "/metrics" and n})


async def wait_finished(stack: Stack, scene: Scene, ids: list[str]) -> list[dict[str, Any]]:
    reader = scene.members[0].client
    deadline = time.monotonic() + 60
    pending = list(ids)
    done: list[dict[str, Any]] = []
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} async predictions never finished"
        still = []
        for prediction_id in pending:
            response = await reader.get(f"/api/v1/predictions/{prediction_id}")
            if response.status_code == 200:
                done.append(response.json())
            else:
                assert_error(response, 400, "prediction_pending")
                still.append(prediction_id)
        pending = still
        if pending:
            await asyncio.sleep(0.2)
    return done


def preemptions(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT COALESCE(SUM(preemption_count), 0) FROM deployments").fetchone()
    assert row is not None
    return int(row[0])


def test_500_mixed_requests_through_nginx_keep_every_promise(stack: Stack) -> None:
    async def scenario() -> tuple[Load, list[dict[str, Any]], Counter[Sample], Counter[Sample]]:
        scene = await build_scene(stack)
        try:
            async with client(stack, "127.0.0.2") as scraper:
                before = await request_counts(scraper)
                load = await fire(stack, scene, seed=20261203)
                # A response's sample is recorded just after it is sent: let the last ones land.
                await asyncio.sleep(0.3)
                first = await request_counts(scraper)
                await asyncio.sleep(0.3)
                second = await request_counts(scraper)
            finished = await wait_finished(stack, scene, load.async_ids)
        finally:
            for member in scene.members:
                await member.client.aclose()
        assert without_scrapes(first - before) == load.sent
        return load, finished, first, second

    load, finished, first, second = asyncio.run(scenario())

    assert sum(load.sent.values()) == sum(MIX.values()) == 500
    for kind, statuses in load.statuses.items():
        assert set(statuses) <= EXPECTED[kind], (kind, statuses)
    assert load.statuses["complete"][200] and load.statuses["create"][201]
    # Two scrapes, likely answered by different processes, agree: only the first scrape itself
    # was counted in between.
    assert without_scrapes(second - first) == Counter()
    assert sum((second - first).values()) == 1
    # Every accepted asynchronous prediction ran, on one of the worker processes.
    assert len(finished) == MIX["predict_async"]
    assert {p["status"] for p in finished} == {"completed"}
    assert all(1000 <= int(p["output"]["result"]) <= 20000 for p in finished)
    check_books(stack.database_url)
    assert preemptions(stack.database_url) > 0, "no creation preempted: the mix proves too little"
    for log in stack.logs.glob("*.log"):
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_rate_limits_are_shared_by_processes_and_keyed_by_the_forwarded_client(
    stack: Stack,
) -> None:
    async def scenario() -> None:
        wrong = {"username": "nobody", "password": "wrong-password"}
        async with client(stack, "127.0.0.200") as first, client(stack, "127.0.0.201") as other:
            # RATE_LIMIT_LOGIN is 10/minute per address, whichever of the 4 processes answers.
            for _ in range(10):
                assert_error(
                    await first.post("/api/v1/auth/login", json=wrong), 401, "invalid_credentials"
                )
            limited = await first.post("/api/v1/auth/login", json=wrong)
            assert_error(limited, 429, "rate_limited")
            assert int(limited.headers["Retry-After"]) >= 1
            # A forged X-Forwarded-For does not buy a fresh budget: nginx appends the real peer.
            forged = {"X-Forwarded-For": "203.0.113.9"}
            spoofed = await first.post("/api/v1/auth/login", json=wrong, headers=forged)
            assert_error(spoofed, 429, "rate_limited")
            # Another client address has its own budget.
            assert_error(
                await other.post("/api/v1/auth/login", json=wrong), 401, "invalid_credentials"
            )

    asyncio.run(scenario())


def test_nginx_refuses_bodies_over_1_mib_with_the_api_error_body(stack: Stack) -> None:
    def register_body(size: int) -> bytes:
        skeleton = b'{"username": "", "email": "a@example.com", "password": "long-enough"}'
        padding = b"u" * (size - len(skeleton))
        return skeleton.replace(b'"username": ""', b'"username": "' + padding + b'"')

    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        too_large = http.post(
            "/api/v1/auth/register", content=register_body(2**20 + 1), headers=headers
        )
        at_limit = http.post("/api/v1/auth/register", content=register_body(2**20), headers=headers)
    assert_error(too_large, 413, "payload_too_large")
    assert too_large.headers["X-Content-Type-Options"] == "nosniff"
    assert too_large.headers["X-Request-ID"]
    # Exactly 1 MiB passes nginx and reaches the API, which judges the content (a long username).
    body = assert_error(at_limit, 422, "validation_error")
    assert body["fields"][0]["field"] == "username"


def test_nginx_answers_in_the_api_error_shape_when_no_api_answers(tmp_path: Path) -> None:
    nginx, port = start_nginx(free_port(), tmp_path / "nginx")  # nothing listens upstream
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/api/v1/auth/me", timeout=10)
    finally:
        stop(nginx)
    assert_error(response, 502, "upstream_unavailable")
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Frame-Options"] == "DENY"
