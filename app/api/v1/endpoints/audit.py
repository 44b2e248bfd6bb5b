import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import DbSession, OrgForAudit, PageParams
from app.models.audit import AuditEntry
from app.schemas.audit import AuditEntryOut
from app.schemas.common import Timestamp, error_responses
from app.services import audit as audit_service
from app.services.audit import AuditFilter

router = APIRouter(tags=["audit"])


def audit_entry_out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut.model_validate(entry, from_attributes=True)


@router.get(
    "/organizations/{org_id}/audit",
    summary="The organization's audit log, newest first",
    description="For organization admins. Every change to the organization's settings, members, "
    "keys, clusters and deployments, and every cancelled prediction, written in the same "
    "transaction as the change. Read-only: no route changes it.",
    responses=error_responses(
        "not_authenticated",
        "forbidden",
        "organization_not_found",
        "validation_error",
        "rate_limited",
    ),
)
async def list_audit(
    access: OrgForAudit,
    db: DbSession,
    page: PageParams,
    response: Response,
    action: Annotated[
        str | None, Query(max_length=64, description="Only this action, e.g. `cluster.updated`.")
    ] = None,
    actor_id: Annotated[
        uuid.UUID | None, Query(description="Only this actor: a user's or an API key's id.")
    ] = None,
    since: Annotated[Timestamp | None, Query(description="From this time on (inclusive).")] = None,
    until: Annotated[Timestamp | None, Query(description="Before this time (exclusive).")] = None,
) -> list[AuditEntryOut]:
    where = AuditFilter(action=action, actor_id=actor_id, since=since, until=until)
    entries, total = await audit_service.list_for_org(db, access.row.id, where, page)
    response.headers["X-Total-Count"] = str(total)
    return [audit_entry_out(entry) for entry in entries]
