"""Prediction rows written straight to the database, as a worker or an old table would have left
them, for tests that need a prediction in a given state without running a model; and reading
back what became of one."""

import uuid
from typing import Any

from fastapi import FastAPI
from prometheus_client import REGISTRY

from app.models.prediction import Prediction, PredictionStatus


def prediction_row(
    deployment: dict[str, Any], created_by: str, status: PredictionStatus, **fields: Any
) -> Prediction:
    """A prediction of `deployment` (as the API answers it) made by user `created_by`, in
    `status`; `fields` sets any other column (input "x", first attempt, model mock otherwise)."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "organization_id": uuid.UUID(deployment["organization_id"]),
        "deployment_id": uuid.UUID(deployment["id"]),
        "created_by": uuid.UUID(created_by),
        "model": "mock",
        "input": "x",
        "status": status,
        "attempts": 1,
    }
    return Prediction(**(values | fields))


async def stored(app: FastAPI, prediction_id: str | uuid.UUID) -> Prediction:
    """The prediction's row as it is now."""
    async with app.state.sessionmaker() as db:
        found = await db.get(Prediction, uuid.UUID(str(prediction_id)))
    assert found is not None
    return found


def counted(status: str) -> float:
    """`mlops_predictions_total` of the mock model with this status, in this process."""
    labels = {"model": "mock", "status": status}
    return REGISTRY.get_sample_value("mlops_predictions_total", labels) or 0.0
