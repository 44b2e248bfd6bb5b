"""The deadline sweeper (`prediction_deadlines`): queued predictions past their ttl expire without
ever running, running ones past their timeout_seconds fail; each once, with any number of workers
sweeping the same database."""

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.core.config import Settings
from app.db.base import utcnow
from app.db.notifier import DONE_CHANNEL
from app.models.prediction import Prediction, PredictionStatus
from app.services import prediction_deadlines, prediction_states, prediction_upkeep
from tests.support.api import World
from tests.support.predictions import counted, prediction_row, stored
from tests.support.workers import answering, eventually, mock_of, standalone_worker

QUEUED, RUNNING = PredictionStatus.queued, PredictionStatus.running
TIMED_OUT = "timed out after {} s (timeout_seconds)"


async def mock_deployment(world: World) -> tuple[str, dict[str, Any]]:
    """(its creator's id, a running mock deployment)."""
    user = await world.user()
    org = await world.org(user)
    return user.id, await world.deployment(user, await world.cluster(org))


@pytest.mark.both_backends
async def test_a_sweep_ends_exactly_the_predictions_past_their_deadline(
    app: FastAPI, world: World
) -> None:
    user_id, deployment = await mock_deployment(world)
    now = utcnow()

    def row(status: PredictionStatus, **fields: Any) -> Prediction:
        return prediction_row(
            deployment, user_id, status, attempts=int(status == RUNNING), **fields
        )

    def running(started_seconds_ago: float, timeout: int | None) -> Prediction:
        started = now - timedelta(seconds=started_seconds_ago)
        return row(RUNNING, worker_id="w", started_at=started, timeout_seconds=timeout)

    expiring = [row(QUEUED, expires_at=now - timedelta(seconds=s)) for s in (0, 1, 3600)]
    timing_out = [running(5.5, 5), running(3601, 3600)]
    untouched = [
        row(QUEUED, expires_at=now + timedelta(seconds=1)),
        row(QUEUED),
        running(4.5, 5),
        running(86_400, None),
        row(PredictionStatus.completed, expires_at=now - timedelta(hours=1), completed_at=now),
    ]
    sessions = app.state.sessionmaker
    async with sessions() as db:
        db.add_all([*expiring, *timing_out, *untouched])
        await db.commit()

    expired, timed_out = await prediction_deadlines.sweep(
        sessions, app.state.notifier, batch=2, now=now
    )
    again = await prediction_deadlines.sweep(sessions, app.state.notifier, now=now)

    assert sorted(e.id for e in expired) == sorted(r.id for r in expiring)
    assert sorted(e.id for e in timed_out) == sorted(r.id for r in timing_out)
    assert again == ([], [])  # ended once
    async with sessions() as db:
        rows = {p.id: p for p in await db.scalars(select(Prediction))}
    for prediction in expiring:
        found = rows[prediction.id]
        assert (found.status, found.error, found.output) == (PredictionStatus.expired, None, None)
        assert (found.completed_at, found.attempts, found.started_at) == (now, 0, None)
    for prediction in timing_out:
        found = rows[prediction.id]
        assert (found.status, found.completed_at) == (PredictionStatus.failed, now)
        assert found.error == TIMED_OUT.format(prediction.timeout_seconds)
        assert found.lease_expires_at is None
    assert [rows[p.id].status for p in untouched] == [p.status for p in untouched]


@pytest.mark.both_backends
async def test_a_claim_never_takes_a_prediction_whose_ttl_passed(
    app: FastAPI, world: World
) -> None:
    """Not even before any sweeper has expired it."""
    user_id, deployment = await mock_deployment(world)
    now = utcnow()
    past, future = (
        prediction_row(deployment, user_id, QUEUED, attempts=0, created_at=now, expires_at=at)
        for at in (now - timedelta(milliseconds=1), now + timedelta(seconds=60))
    )
    async with app.state.sessionmaker() as db:
        db.add_all([past, future])
        await db.commit()
    claimed = await prediction_states.claim(app.state.sessionmaker, "w", 10, 30)
    assert [c.id for c in claimed] == [future.id]


async def test_two_workers_end_each_prediction_once_and_run_no_expired_one(
    app: FastAPI,
    world: World,
    settings_factory: Callable[..., Settings],
    postgres_url: str,
) -> None:
    """On one PostgreSQL database: predictions whose ttl passed before the workers started,
    predictions that time out, and predictions that complete. Each ends once (one
    `prediction_done` notification each; the metrics count each once), with the right state, and
    the expired ones never ran."""
    user = await world.user()
    org = await world.org(user)
    deployment = await world.deployment(user, await world.cluster(org))
    path = f"/api/v1/deployments/{deployment['id']}/predict"

    async def submit(count: int, **options: int) -> list[uuid.UUID]:
        ids = []
        for i in range(count):
            response = await user.client.post(
                path, json={"input": f"x{i}", **options}, headers={"Async-Mode": "true"}
            )
            assert response.status_code == 202, response.text
            ids.append(uuid.UUID(response.json()["prediction_id"]))
        return ids

    notified: list[uuid.UUID] = []
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as listener:
        await listener.execute(f"LISTEN {DONE_CHANNEL}")

        async def listen() -> None:
            async for note in listener.notifies():
                notified.append(uuid.UUID(note.payload))

        listening = asyncio.create_task(listen())
        before = {status: counted(status) for status in ("expired", "timeout", "completed")}
        expected = {"expired": 20, "timeout": 10, "completed": 20}

        def counted_since() -> dict[str, float]:
            return {status: counted(status) - before[status] for status in before}

        expiring = await submit(20, ttl_seconds=1)
        timing_out = await submit(10, timeout_seconds=1)
        completing = await submit(10) + await submit(10, ttl_seconds=600, timeout_seconds=600)
        every = [*expiring, *timing_out, *completing]
        async with app.state.sessionmaker() as db:
            last_expiry = await db.scalar(
                select(Prediction.expires_at).where(Prediction.id == expiring[-1])
            )
        assert last_expiry is not None
        await asyncio.sleep((last_expiry - utcnow()).total_seconds() + 0.1)

        settings = settings_factory(mock_delay_min=5, mock_delay_max=5)
        async with standalone_worker(settings) as one, standalone_worker(settings) as two:

            async def all_done() -> bool:
                async with app.state.sessionmaker() as db:
                    states = await db.scalars(
                        select(Prediction.status).where(Prediction.id.in_(every))
                    )
                    return all(status.is_done for status in states)

            await eventually(all_done, within=60, what="every prediction ending")
            await eventually(lambda: set(notified) >= set(every), what="every notification")
            await eventually(lambda: counted_since() == expected, what="every ending counted")
            ran = [mock_of(worker) for worker in (one, two)]
            assert answering(one) == answering(two) == 0
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening

    async with app.state.sessionmaker() as db:
        rows = {p.id: p for p in await db.scalars(select(Prediction))}
    assert Counter(notified) == Counter(every)  # each ended once
    for prediction_id in expiring:
        row = rows[prediction_id]
        assert (row.status, row.attempts, row.started_at) == (PredictionStatus.expired, 0, None)
        assert row.expires_at is not None and row.completed_at is not None
        assert row.completed_at >= row.expires_at
    for prediction_id in timing_out:
        row = rows[prediction_id]
        assert (row.status, row.error, row.attempts) == (
            PredictionStatus.failed,
            TIMED_OUT.format(1),
            1,
        )
    for prediction_id in completing:
        row = rows[prediction_id]
        assert (row.status, row.attempts) == (PredictionStatus.completed, 1)
        assert row.output is not None and row.output["input"] == row.input
    # The models ran once for each prediction that was not expired, and never for the others.
    assert sum(runtime.calls for runtime in ran if runtime is not None) == 30
    assert counted_since() == expected  # and nothing counted twice, even as the workers stopped


@pytest.mark.both_backends
async def test_a_prediction_that_started_and_went_back_to_the_queue_never_expires(
    app: FastAPI, world: World
) -> None:
    """The ttl asks that it start in time. One that did, and went back to the queue because its
    worker stopped renewing (or shut down), waits for the next worker however late."""
    user_id, deployment = await mock_deployment(world)
    now = utcnow()
    lapsed, released = (
        prediction_row(
            deployment,
            user_id,
            RUNNING,
            worker_id=worker,
            started_at=now - timedelta(seconds=60),
            lease_expires_at=now + timedelta(seconds=lease),
            expires_at=now - timedelta(seconds=30),
        )
        for worker, lease in (("gone", -1), ("leaving", 30))
    )
    async with app.state.sessionmaker() as db:
        db.add_all([lapsed, released])
        await db.commit()
    assert await prediction_upkeep.recover_expired(app.state.sessionmaker) == 1
    await prediction_upkeep.release_own(app.state.sessionmaker, "leaving")
    await prediction_deadlines.sweep(app.state.sessionmaker, app.state.notifier)
    for prediction in (lapsed, released):
        row = await stored(app, prediction.id)
        assert (row.status, row.expires_at) == (QUEUED, None)
