"""Worker pools by model: a worker started with `--models` claims only those models' predictions,
so a pool without torch never takes (and fails) a DistilBERT prediction."""

import httpx
import pytest
from fastapi import FastAPI

from app.cli import build_parser
from app.services import prediction_states
from tests.support.api import World

pytestmark = pytest.mark.both_backends


async def submit(client: httpx.AsyncClient, deployment_id: str) -> str:
    response = await client.post(
        f"/api/v1/deployments/{deployment_id}/predict",
        json={"input": "good film"},
        headers={"Async-Mode": "true"},
    )
    assert response.status_code == 202, response.text
    prediction_id: str = response.json()["prediction_id"]
    return prediction_id


async def test_a_worker_claims_only_the_models_of_its_pool(app: FastAPI, world: World) -> None:
    admin = await world.user()
    cluster = await world.cluster(await world.org(admin), cpu=4)
    mock = await world.deployment(admin, cluster, cpu=1, model="mock")
    distilbert = await world.deployment(admin, cluster, cpu=1, model="distilbert-sst2")
    mock_ids = {await submit(admin.client, mock["id"]) for _ in range(3)}
    distilbert_ids = {await submit(admin.client, distilbert["id"]) for _ in range(2)}
    sessions = app.state.sessionmaker

    light = await prediction_states.claim(sessions, "light-pool", 100, 30, frozenset({"mock"}))
    assert {str(item.id) for item in light} == mock_ids
    assert await prediction_states.claim(sessions, "light-pool", 100, 30, frozenset({"mock"})) == []
    ml = await prediction_states.claim(sessions, "ml-pool", 100, 30, frozenset({"distilbert-sst2"}))
    assert {str(item.id) for item in ml} == distilbert_ids


def test_the_worker_command_names_its_models() -> None:
    args = build_parser().parse_args(["worker", "--models", "mock, gemma3:1b"])
    assert args.models == frozenset({"mock", "gemma3:1b"})
    assert build_parser().parse_args(["worker"]).models is None


@pytest.mark.parametrize("value", ["mock,gpt-5", "", " , "])
def test_unknown_or_no_models_are_refused(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["worker", "--models", value])
    assert "the models are: mock, distilbert-sst2, gemma3:1b" in capsys.readouterr().err
