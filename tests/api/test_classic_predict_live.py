"""The classic `/predict` API against live servers (`mlops serve`, PostgreSQL, in-process
workers), written from the classic API's own example requests and responses:

    POST /predict {"input": "..."}                    -> 200 {"input", "result"}
    POST /predict, Async-Mode: true                   -> 202 {"message": "Request received.
                                                              Processing asynchronously.",
                                                              "prediction_id"}
    GET /predict/{id} while processing                -> 400 {"error": "Prediction is still
                                                              being processed."}
    GET /predict/{id} afterwards                      -> 200 {"prediction_id", "output"}
    GET /predict/{unknown id}                         -> 404 {"error": "Prediction ID not found."}
    POST /predict {"text": "..."} (sentiment demos)   -> 200 {"input", "label", "score", ...}

One server is started per setting: without DEFAULT_DEPLOYMENT_ID (it builds the world through
the platform's API), with it on a mock deployment and PUBLIC_PREDICT=false, and with it on a
DistilBERT deployment (the tiny model built offline) and PUBLIC_PREDICT=true."""

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fakes import build_tiny_distilbert
from tests.support.live import Person, deploy, person
from tests.support.processes import free_port, service_env, start_api, stop

ACCEPTED = "Request received. Processing asynchronously."
NOT_FOUND = {"error": "Prediction ID not found."}
PENDING = {"error": "Prediction is still being processed."}


@dataclass
class Servers:
    builder: str  # DEFAULT_DEPLOYMENT_ID unset
    private: str  # the mock deployment, PUBLIC_PREDICT=false
    public: str  # the DistilBERT deployment, PUBLIC_PREDICT=true
    admin: Person
    key: str  # a developer API key of the deployments' organization
    cluster_id: str
    mock: dict[str, Any]
    other: dict[str, Any]


@pytest.fixture(scope="module")
def servers(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    folder = tmp_path_factory.mktemp("classic")
    model_dir = build_tiny_distilbert(folder / "distilbert")
    env = service_env(
        postgres_url, MOCK_DELAY_MIN="0.6", MOCK_DELAY_MAX="0.8", DISTILBERT_MODEL=str(model_dir)
    )
    started: list[Any] = []

    def start(name: str, **settings: str) -> str:
        port = free_port()
        started.append(start_api({**env, **settings}, port, folder / f"{name}.log"))
        return f"http://127.0.0.1:{port}"

    try:
        builder = start("builder")
        admin = person(builder, "classic")
        org = admin.post("/api/v1/organizations", {"name": "Classic"})
        cluster = admin.post(
            f"/api/v1/organizations/{org['id']}/clusters",
            {"name": "pool", "capacity": {"cpu": 2, "ram_gb": 8, "gpu": 0}},
        )
        # The mock deployment is the only one of priority below 3: the one a newcomer of
        # priority 3 would preempt.
        mock = deploy(admin, cluster["id"], "mock", 1, priority=0)
        other = deploy(admin, cluster["id"], "other", 0.5, priority=5)
        sentiment = admin.post(
            f"/api/v1/clusters/{cluster['id']}/deployments",
            {
                "name": "sentiment",
                "model": "distilbert-sst2",
                "resources": {"cpu": 0.5, "ram_gb": 1, "gpu": 0},
                "priority": 5,
            },
        )
        assert {mock["status"], other["status"], sentiment["status"]} == {"running"}
        key = admin.post(
            f"/api/v1/organizations/{org['id']}/api-keys", {"name": "client", "role": "developer"}
        )["key"]
        private = start("private", DEFAULT_DEPLOYMENT_ID=mock["id"])
        public = start("public", DEFAULT_DEPLOYMENT_ID=sentiment["id"], PUBLIC_PREDICT="true")
        yield Servers(builder, private, public, admin, key, cluster["id"], mock, other)
    finally:
        for server in started:
            stop(server)


def client(base_url: str, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


def poll(api: httpx.Client, prediction_id: str) -> httpx.Response:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = api.get(f"/predict/{prediction_id}")
        if response.status_code != 400:
            return response
        assert response.json() == PENDING
        time.sleep(0.1)
    raise AssertionError("the prediction never finished")


def test_sync_answers_the_input_echoed_and_a_string_result(servers: Servers) -> None:
    response = client(servers.private, servers.key).post("/predict", json={"input": "hello"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"input", "result"}
    assert body["input"] == "hello" and isinstance(body["result"], str)
    assert 1000 <= int(body["result"]) <= 20000


def test_async_is_202_then_400_while_processing_then_200(servers: Servers) -> None:
    api = client(servers.private, servers.key)
    accepted = api.post("/predict", json={"input": "later"}, headers={"Async-Mode": "true"})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {
        "message": ACCEPTED,
        "prediction_id": accepted.json()["prediction_id"],
    }
    prediction_id = accepted.json()["prediction_id"]
    uuid.UUID(prediction_id)
    processing = api.get(f"/predict/{prediction_id}")
    assert (processing.status_code, processing.json()) == (400, PENDING)
    done = poll(api, prediction_id)
    assert done.status_code == 200, done.text
    assert set(done.json()) == {"prediction_id", "output"}
    assert done.json()["prediction_id"] == prediction_id
    assert done.json()["output"]["input"] == "later"
    assert isinstance(done.json()["output"]["result"], str)

    # An ordinary prediction of the deployment: in its list, with the same output.
    listed = servers.admin.client.get(f"/api/v1/deployments/{servers.mock['id']}/predictions")
    found = {p["prediction_id"]: p for p in listed.json()}
    assert found[prediction_id]["output"] == done.json()["output"]


def test_unknown_ids_and_other_deployments_predictions_are_404(servers: Servers) -> None:
    elsewhere = servers.admin.client.post(
        f"/api/v1/deployments/{servers.other['id']}/predict",
        json={"input": "x"},
        headers={"Async-Mode": "true"},
    )
    assert elsewhere.status_code == 202, elsewhere.text
    api = client(servers.private, servers.key)
    for unknown in (elsewhere.json()["prediction_id"], str(uuid.uuid4())):
        response = api.get(f"/predict/{unknown}")
        assert (response.status_code, response.json()) == (404, NOT_FOUND), unknown


def test_without_credentials_it_is_401_unless_public(servers: Servers) -> None:
    anonymous = client(servers.private)
    for response in (
        anonymous.post("/predict", json={"input": "x"}),
        anonymous.get(f"/predict/{uuid.uuid4()}"),
    ):
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "not_authenticated"


def test_without_a_default_deployment_the_routes_say_so(servers: Servers) -> None:
    response = client(servers.builder, servers.key).post("/predict", json={"input": "x"})
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "default_deployment_unset"
    assert "DEFAULT_DEPLOYMENT_ID" in response.json()["error"]


def test_the_text_alias_on_distilbert_for_anyone(servers: Servers) -> None:
    response = client(servers.public).post("/predict", json={"text": "a wonderful movie"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"input", "label", "score", "positive_score", "negative_score"}
    assert body["input"] == "a wonderful movie" and body["label"] in {"POSITIVE", "NEGATIVE"}
    assert body["score"] == max(body["positive_score"], body["negative_score"])


def test_a_pending_default_deployment_is_503_with_retry_after(servers: Servers) -> None:
    urgent = deploy(servers.admin, servers.cluster_id, "urgent", 1, priority=3)
    assert urgent["status"] == "running"
    mock = servers.admin.client.get(f"/api/v1/deployments/{servers.mock['id']}").json()
    assert (mock["status"], mock["status_reason"]) == ("pending", "preempted")
    api = client(servers.private, servers.key)
    started = time.monotonic()
    refused = api.post("/predict", json={"input": "x"})
    assert time.monotonic() - started < 10, "a pending deployment must not hang the call"
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "deployment_unavailable"
    assert "pending (preempted)" in refused.json()["error"]
    assert int(refused.headers["Retry-After"]) >= 1
    servers.admin.post(f"/api/v1/deployments/{urgent['id']}/complete")
    assert api.post("/predict", json={"input": "back"}).status_code == 200


def test_the_calls_count_in_the_metrics(servers: Servers) -> None:
    api = client(servers.private, servers.key)
    assert api.post("/predict", json={"input": "counted"}).status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(api.get("/metrics").text)
        for sample in family.samples
    }
    route = (("method", "POST"), ("route", "/predict"), ("status", "200"))
    assert samples[("http_requests_total", route)] >= 1
    completed = (("model", "mock"), ("status", "completed"))
    assert samples[("mlops_predictions_total", completed)] >= 1


def test_the_servers_logged_no_traceback(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> None:
    logs = Path(str(tmp_path_factory.getbasetemp())).glob("classic*/*.log")
    for log in logs:
        assert "Traceback" not in log.read_text(), log
