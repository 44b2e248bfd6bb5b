from fastapi import APIRouter, Response

from app.api.deps import DbSession, OrgForWebhookSecret, PageParams, PredictionForReading
from app.models.prediction import WebhookAttempt
from app.schemas.common import error_responses
from app.schemas.webhook import WebhookAttemptOut, WebhookSecretOut
from app.services.webhooks import deliveries, signing_secret

router = APIRouter(tags=["webhooks"])

SECRET_ERRORS = error_responses(
    "not_authenticated", "forbidden", "organization_not_found", "rate_limited"
)


def attempt_out(attempt: WebhookAttempt) -> WebhookAttemptOut:
    return WebhookAttemptOut(
        attempt=attempt.attempt,
        url=attempt.url,
        attempted_at=attempt.attempted_at,
        status_code=attempt.status_code,
        error=attempt.error,
        duration_ms=attempt.duration_ms,
    )


@router.get(
    "/organizations/{org_id}/webhook-secret",
    summary="The secret that signs the organization's callbacks",
    responses=SECRET_ERRORS,
)
async def get_webhook_secret(access: OrgForWebhookSecret) -> WebhookSecretOut:
    return WebhookSecretOut(secret=signing_secret.current_secret(access))


@router.post(
    "/organizations/{org_id}/webhook-secret/rotate",
    summary="Replace the signing secret (the old one stops verifying at once)",
    description="Callback attempts that start after the rotation are signed with the new "
    "secret, retries of earlier predictions included.",
    responses=SECRET_ERRORS,
)
async def rotate_webhook_secret(access: OrgForWebhookSecret, db: DbSession) -> WebhookSecretOut:
    return WebhookSecretOut(secret=await signing_secret.rotate_secret(db, access))


@router.get(
    "/predictions/{prediction_id}/webhook-attempts",
    summary="The delivery attempts of a prediction's callback, first first",
    responses=error_responses(
        "not_authenticated", "prediction_not_found", "validation_error", "rate_limited"
    ),
)
async def list_webhook_attempts(
    access: PredictionForReading, db: DbSession, page: PageParams, response: Response
) -> list[WebhookAttemptOut]:
    attempts, total = await deliveries.list_attempts(db, access, page)
    response.headers["X-Total-Count"] = str(total)
    return [attempt_out(attempt) for attempt in attempts]
