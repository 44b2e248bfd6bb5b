"""The retention job (PREDICTION_RETENTION_DAYS): deletes only finished predictions (in any final
state) older than the window, in batches, while predictions are being accepted."""

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.db.base import utcnow
from app.models.prediction import Prediction, PredictionStatus, WebhookState
from app.services import prediction_upkeep
from app.workers.worker import Worker
from tests.support.api import World
from tests.support.predictions import prediction_row

BATCH = 50
OLD_FINISHED = 230  # 4 full batches and a partial one
ACCEPTED_MEANWHILE = 30


def rows(
    deployment: dict[str, Any], owner: str, status: PredictionStatus, age: timedelta, n: int
) -> list[Prediction]:
    """`n` predictions of `status`, created `age` ago (and finished then, if finished)."""
    created = utcnow() - age - timedelta(minutes=1)
    finished = status.is_done
    return [
        prediction_row(
            deployment,
            owner,
            status,
            input=f"{status} {i}",
            attempts=0,
            output={"result": 1} if status == PredictionStatus.completed else None,
            error="boom" if status == PredictionStatus.failed else None,
            created_at=created,
            started_at=created if status != PredictionStatus.queued else None,
            completed_at=utcnow() - age if finished else None,
        )
        for i in range(n)
    ]


@pytest.mark.both_backends
async def test_only_finished_predictions_past_the_window_go_in_batches_while_intake_goes_on(
    app: FastAPI, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await world.user()
    org = await world.org(user)
    deployment = await world.deployment(user, await world.cluster(org))
    old, recent = timedelta(days=31), timedelta(days=29)
    seeded = [
        *rows(deployment, user.id, PredictionStatus.completed, old, OLD_FINISHED - 30),
        *rows(deployment, user.id, PredictionStatus.failed, old, 10),
        *rows(deployment, user.id, PredictionStatus.cancelled, old, 10),
        *rows(deployment, user.id, PredictionStatus.expired, old, 10),
        *rows(deployment, user.id, PredictionStatus.completed, recent, 20),
        *rows(deployment, user.id, PredictionStatus.failed, recent, 5),
        *rows(deployment, user.id, PredictionStatus.cancelled, recent, 5),
        # Unfinished, however old: never pruned (a long queue, a long model call).
        *rows(deployment, user.id, PredictionStatus.queued, old, 10),
        *rows(deployment, user.id, PredictionStatus.running, old, 5),
    ]
    # Finished long ago, but a callback is still being retried: kept until it is settled.
    retrying = rows(deployment, user.id, PredictionStatus.completed, old, 3)
    for row in retrying:
        row.callback_url, row.webhook_state = "https://hooks.example.com/p", WebhookState.pending
    seeded += retrying
    window = utcnow() - timedelta(days=30)
    kept = {r.id for r in seeded if r.completed_at is None or r.completed_at > window}
    kept |= {r.id for r in retrying}
    async with app.state.sessionmaker() as db:
        db.add_all(seeded)
        await db.commit()

    batches: list[int] = []
    real_prune = prediction_upkeep.prune_finished

    async def counted(*args: Any) -> int:
        deleted = await real_prune(*args)
        batches.append(deleted)
        return deleted

    monkeypatch.setattr(prediction_upkeep, "prune_finished", counted)
    worker = Worker(
        app.state.settings.model_copy(update={"prediction_retention_days": 30}),
        app.state.sessionmaker,
        app.state.notifier,
    )
    path = f"/api/v1/deployments/{deployment['id']}/predict"

    async def accept() -> list[str]:
        accepted = []
        for i in range(ACCEPTED_MEANWHILE):
            response = await user.client.post(
                path, json={"input": f"new {i}"}, headers={"Async-Mode": "true"}
            )
            assert response.status_code == 202, response.text
            accepted.append(response.json()["prediction_id"])
        return accepted

    pruned, accepted = await asyncio.gather(worker.prune(batch=BATCH), accept())

    assert pruned == OLD_FINISHED
    assert batches == [BATCH] * (OLD_FINISHED // BATCH) + [OLD_FINISHED % BATCH]
    async with app.state.sessionmaker() as db:
        left = set(await db.scalars(select(Prediction.id)))
    assert left == kept | {uuid.UUID(p) for p in accepted}
    assert await worker.prune(batch=BATCH) == 0  # nothing more past the window


@pytest.mark.parametrize(("days", "runs"), [(30, True), (0, False)])
async def test_the_job_runs_in_every_worker_unless_retention_is_zero(
    app: FastAPI, days: float, runs: bool
) -> None:
    settings = app.state.settings.model_copy(update={"prediction_retention_days": days})
    worker = Worker(settings, app.state.sessionmaker, app.state.notifier)
    await worker.start()
    try:
        names = {task.get_name() for task in asyncio.all_tasks()}
        assert ("worker-retention" in names) is runs
    finally:
        await worker.stop()
