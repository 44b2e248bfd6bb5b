"""The audit log: who changed what in an organization, written by the change's own transaction.

Services call `record` before they commit, so the row exists exactly when the change does: a
failed or rolled-back action leaves none. Who acted comes from `acting`, set once per request by
the authentication dependency (a person or an API key); the request id from the correlation-id
middleware. Actions without a caller (the scheduler, the sweeper) are not audited: their effects
are in each deployment's events.
"""

import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgi_correlation_id import correlation_id
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.models.audit import AuditEntry
from app.services.pagination import Page, paginate


@dataclass(frozen=True, slots=True)
class Actor:
    type: str  # "user" or "api_key"
    id: uuid.UUID
    name: str


SYSTEM = Actor("system", uuid.UUID(int=0), "system")
_ACTOR: ContextVar[Actor | None] = ContextVar("audit_actor", default=None)


def act_as(actor: Actor | None) -> None:
    """Who the rest of this request acts as; set (or cleared) by every authenticated request
    before its endpoint runs, so a value never outlives its request."""
    _ACTOR.set(actor)


def record(
    db: AsyncSession,
    organization_id: uuid.UUID,
    action: str,
    target: tuple[str, uuid.UUID | None],
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    """Add the row of `action` on `target` (type, id) to the caller's transaction. `before` and
    `after` are small summaries of what changed, never secrets."""
    actor = _ACTOR.get() or SYSTEM
    db.add(
        AuditEntry(
            id=uuid.uuid4(),
            organization_id=organization_id,
            at=utcnow(),
            actor_type=actor.type,
            actor_id=actor.id,
            actor_name=actor.name,
            action=action,
            target_type=target[0],
            target_id=target[1],
            before=None if before is None else dict(before),
            after=None if after is None else dict(after),
            request_id=correlation_id.get(),
        )
    )


@dataclass(frozen=True, slots=True)
class AuditFilter:
    action: str | None = None
    actor_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_for_org(
    db: AsyncSession, organization_id: uuid.UUID, where: AuditFilter, page: Page
) -> tuple[list[AuditEntry], int]:
    """Newest first: the question asked of an audit log is usually "what happened lately"."""
    stmt = select(AuditEntry).where(AuditEntry.organization_id == organization_id)
    if where.action is not None:
        stmt = stmt.where(AuditEntry.action == where.action)
    if where.actor_id is not None:
        stmt = stmt.where(AuditEntry.actor_id == where.actor_id)
    if where.since is not None:
        stmt = stmt.where(AuditEntry.at >= where.since)
    if where.until is not None:
        stmt = stmt.where(AuditEntry.at < where.until)
    rows, total = await paginate(db, stmt.order_by(AuditEntry.at.desc(), AuditEntry.id), page)
    return [row[0] for row in rows], total
