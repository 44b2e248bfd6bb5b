"""Recording outcomes (`prediction_states.finish`): a batch writes only the rows this worker still
runs, each once, and hands back what it wrote; rows failed meanwhile or taken over are left
alone. On PostgreSQL the batch is one statement; on SQLite one per row."""

from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.db.base import utcnow
from app.models.prediction import Prediction, PredictionStatus
from app.services import prediction_states
from tests.support.api import World
from tests.support.predictions import prediction_row

ME, OTHER = "worker-me", "worker-other"


@pytest.mark.both_backends
async def test_a_batch_writes_only_what_this_worker_still_runs(app: FastAPI, world: World) -> None:
    user = await world.user()
    org = await world.org(user)
    deployment = await world.deployment(user, await world.cluster(org))
    now = utcnow()

    def row(status: PredictionStatus, worker: str) -> Prediction:
        return prediction_row(
            deployment,
            user.id,
            status,
            error="deployment ended" if status == PredictionStatus.failed else None,
            worker_id=worker,
            started_at=now,
            lease_expires_at=now + timedelta(seconds=30),
            created_at=now,
        )

    done, broke, ended, taken = (
        row(PredictionStatus.running, ME),
        row(PredictionStatus.running, ME),
        row(PredictionStatus.failed, ME),  # its deployment ended meanwhile
        row(PredictionStatus.running, OTHER),  # its lease lapsed and another worker took it
    )
    sessions = app.state.sessionmaker
    async with sessions() as db:
        db.add_all([done, broke, ended, taken])
        await db.commit()

    outcomes = [
        (done.id, "mock", {"input": "x", "result": "7"}, None),
        (broke.id, "mock", None, "the model failed"),
        (ended.id, "mock", {"input": "x", "result": "8"}, None),
        (taken.id, "mock", {"input": "x", "result": "9"}, None),
    ]
    written = await prediction_states.finish(sessions, ME, outcomes)
    again = await prediction_states.finish(sessions, ME, outcomes)

    assert {r.id: r.status for r in written} == {
        done.id: PredictionStatus.completed,
        broke.id: PredictionStatus.failed,
    }
    assert again == []  # finished at most once
    async with sessions() as db:
        found = {
            p.id: p
            for p in await db.scalars(
                select(Prediction).where(Prediction.id.in_([done.id, broke.id, ended.id, taken.id]))
            )
        }
    assert found[done.id].output == {"input": "x", "result": "7"}
    assert found[done.id].completed_at is not None and found[done.id].lease_expires_at is None
    assert (found[broke.id].output, found[broke.id].error) == (None, "the model failed")
    assert found[ended.id].status == PredictionStatus.failed
    assert found[ended.id].error == "deployment ended"
    assert (found[taken.id].status, found[taken.id].worker_id) == (PredictionStatus.running, OTHER)
    assert found[taken.id].output is None
