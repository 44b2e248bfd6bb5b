"""Whether running deployments can be served: the workers check each model their running
deployments use and record the verdict on those deployments, with a `serving` event when it
changes, so the deployment, its events and /metrics say why a model cannot answer and the API
refuses predictions at once instead of queueing them to fail."""

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models.deployment import Deployment, DeploymentStatus
from app.services.deployment_events import record

Sessions = async_sessionmaker[AsyncSession]


async def running_by_model(
    sessions: Sessions, models: Collection[str] | None
) -> dict[str, list[uuid.UUID]]:
    """The running deployments of `models` (every model when None), by model."""
    stmt = select(Deployment.model, Deployment.id).where(
        Deployment.status == DeploymentStatus.running
    )
    if models is not None:
        stmt = stmt.where(Deployment.model.in_(models))
    async with sessions() as db:
        rows = (await db.execute(stmt)).all()
    found: dict[str, list[uuid.UUID]] = {}
    for model, deployment_id in rows:
        found.setdefault(model, []).append(deployment_id)
    return found


async def record_verdict(
    sessions: Sessions, model: str, ready: bool, reason: str | None, now: datetime
) -> list[uuid.UUID]:
    """Set the verdict on the running deployments of `model` whose state differs; each of those
    gets a `serving` event. Returns their ids."""
    reason = reason[:500] if reason else None
    differs = or_(
        Deployment.serving_ready.is_(None),
        Deployment.serving_ready != ready,
        Deployment.serving_reason.is_distinct_from(reason),
    )
    async with sessions() as db:
        changed = list(
            await db.scalars(
                update(Deployment)
                .where(
                    Deployment.model == model,
                    Deployment.status == DeploymentStatus.running,
                    differs,
                )
                .values(serving_ready=ready, serving_reason=reason, serving_since=now)
                .returning(Deployment.id)
                .execution_options(synchronize_session=False)
            )
        )
        for deployment_id in sorted(changed, key=str):
            record(db.sync_session, deployment_id, "serving", now, ready=ready, reason=reason)
        await db.commit()
    return changed


async def count_not_serving(db: AsyncSession) -> dict[str, int]:
    """Running deployments the workers found they cannot serve, by model (for /metrics)."""
    rows = await db.execute(
        select(Deployment.model, func.count())
        .where(Deployment.status == DeploymentStatus.running, Deployment.serving_ready.is_(False))
        .group_by(Deployment.model)
    )
    return dict(rows.all())
