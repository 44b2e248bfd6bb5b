"""A deployment's history: one row per event, written in the transaction that caused it."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.models.deployment import DeploymentEvent


def record(
    session: Session, deployment_id: uuid.UUID, kind: str, at: datetime, **detail: Any
) -> None:
    session.add(DeploymentEvent(deployment_id=deployment_id, type=kind, at=at, detail=detail))
