"""The deployment that the classic `/predict` API serves (DEFAULT_DEPLOYMENT_ID), as each caller
may reach it: a signed-in caller (session or API key) through the tenancy helper and the role
table, exactly as on the platform's own routes; an anonymous one (PUBLIC_PREDICT=true) as the
deployment's public caller (`public_callers`), who reads only the predictions it made itself."""

import math
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.errors import DomainError, NotFound, not_found
from app.db.base import utcnow
from app.models.deployment import Deployment, DeploymentStatus
from app.models.organization import Role
from app.models.prediction import Prediction
from app.services import deployment_views, permissions, public_callers
from app.services.auth import Principal
from app.services.permissions import Action
from app.services.tenancy import Scoped, load_scoped, parse_id

# Retry-After when no estimate of the deployment's start is known.
RETRY_AFTER_SECONDS = 30
# An estimate further away than this is not worth a client's sleep: it asks again by then.
MAX_RETRY_AFTER_SECONDS = 3600


class DefaultDeploymentUnavailable(DomainError):
    """The default deployment is not running: the caller is told why, and when to try again,
    rather than left waiting for a deployment that may not run for hours."""

    status_code = 503
    default_code = "deployment_unavailable"


def configured_id(settings: Settings) -> uuid.UUID:
    if settings.default_deployment_id is None:
        raise NotFound(
            "default_deployment_unset",
            "No default deployment is configured: set DEFAULT_DEPLOYMENT_ID to the deployment "
            "that /predict serves.",
        )
    return settings.default_deployment_id


async def for_prediction(
    db: AsyncSession, settings: Settings, caller: Principal | None
) -> Scoped[Deployment]:
    """The default deployment held FOR SHARE (as `DeploymentForPrediction` holds it), for a
    caller allowed to run predictions on it; `user_id` is who the prediction is created by."""
    deployment_id = configured_id(settings)
    if caller is not None:
        access = await load_scoped(
            db, Deployment, deployment_id, caller.id, "deployment", share=True, key=caller.api_key
        )
        return permissions.require(access, Action.run_prediction)
    row = await _held(db, deployment_id)
    account = await public_callers.find(db, deployment_id)
    if account is None:  # the first anonymous call: making the account commits, so hold again
        account = await public_callers.find_or_create(db, deployment_id)
        row = await _held(db, deployment_id)
    return Scoped(row=row, role=Role.developer, user_id=account)


async def _held(db: AsyncSession, deployment_id: uuid.UUID) -> Deployment:
    row = await db.scalar(
        select(Deployment).where(Deployment.id == deployment_id).with_for_update(read=True)
    )
    if row is None:
        raise not_found("deployment")
    return row


async def find_prediction(
    db: AsyncSession, settings: Settings, caller: Principal | None, raw_id: str
) -> Prediction | None:
    """A prediction of the default deployment that this caller may read; None for any other id,
    whatever exists (another deployment's, another organization's, a stranger's)."""
    deployment_id = configured_id(settings)
    prediction_id = parse_id(raw_id)
    if prediction_id is None:
        return None
    if caller is not None:
        try:
            access = await load_scoped(
                db, Prediction, prediction_id, caller.id, "prediction", key=caller.api_key
            )
        except NotFound:
            return None
        prediction = permissions.require(access, Action.read_predictions).row
        return prediction if prediction.deployment_id == deployment_id else None
    account = await public_callers.find(db, deployment_id)
    if account is None:
        return None
    found: Prediction | None = await db.scalar(
        select(Prediction).where(
            Prediction.id == prediction_id,
            Prediction.deployment_id == deployment_id,
            Prediction.created_by == account,
        )
    )
    return found


async def unavailable(
    db: AsyncSession, deployment: Deployment, caller: Principal | None
) -> DefaultDeploymentUnavailable:
    """Why the default deployment takes no predictions now, and when to try again. An anonymous
    caller learns only that it is not running: the scheduler's reasons describe the tenant's
    cluster (its free capacity, its queue), which is the members' business."""
    status = deployment.status
    retry_after = RETRY_AFTER_SECONDS
    if caller is None and status in (DeploymentStatus.pending, DeploymentStatus.preempting):
        message = "The default deployment is not running at the moment; retry later."
    elif status == DeploymentStatus.pending:
        view = (await deployment_views.views(db, [deployment]))[0]
        message = f"The default deployment is pending ({view.status_reason})."
        if view.insight is not None:
            message = f"{message[:-1]}: {view.insight.pending.message}"
            start = view.insight.estimated_start_at
            if start is not None:
                seconds = math.ceil((start - utcnow()).total_seconds())
                retry_after = min(max(seconds, 1), MAX_RETRY_AFTER_SECONDS)
        message += " /predict answers again once it runs."
    elif status == DeploymentStatus.preempting:
        message = (
            "The default deployment is being preempted: it takes no new predictions, and waits "
            "to run again."
        )
    else:
        message = (
            f"The default deployment is {status} and will not run again: point "
            "DEFAULT_DEPLOYMENT_ID at a running deployment."
        )
    return DefaultDeploymentUnavailable(message=message, headers={"Retry-After": str(retry_after)})
