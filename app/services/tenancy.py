"""The one tenancy helper: every organization-owned row named by an id is loaded through
`load_scoped`, whose query joins the caller's membership of the row's organization.

A row of an organization the caller does not belong to is never selected, so it is simply not found
(404); existence never leaks. Lists run only after their organization, cluster or deployment was
loaded this way, and filter by its id. Role checks come after (`app/services/permissions.py`), on
the membership found by the same query.
"""

import uuid
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import not_found
from app.models.organization import Membership, Organization, Role

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Scoped(Generic[T]):
    """A row the caller may see, with the caller's role in the row's organization."""

    row: T
    role: Role
    user_id: uuid.UUID


def parse_id(value: str | uuid.UUID) -> uuid.UUID | None:
    """A path id that is not a UUID is simply unknown (404), never a validation error."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


# The statement of `load_scoped` per (model, share), built once: ids are bound per call.
_LOAD_STATEMENTS: dict[tuple[type[Any], bool], Select[*tuple[Any, ...]]] = {}


def _load_statement(model: type[Any], share: bool) -> Select[*tuple[Any, ...]]:
    key = (model, share)
    stmt = _LOAD_STATEMENTS.get(key)
    if stmt is None:
        org_column = Organization.id if model is Organization else model.organization_id
        member = and_(
            Membership.organization_id == org_column, Membership.user_id == bindparam("user_id")
        )  # the caller's membership of the row's organization: no membership, no row
        stmt = (
            select(model, Membership.role)
            .join(Membership, member)
            .where(model.id == bindparam("row_id"))
        )
        if share:
            stmt = stmt.with_for_update(read=True, of=model)
        _LOAD_STATEMENTS[key] = stmt
    return stmt


async def load_scoped(
    db: AsyncSession,
    model: type[T],
    raw_id: str | uuid.UUID,
    user_id: uuid.UUID,
    resource: str,
    *,
    share: bool = False,
) -> Scoped[T]:
    """Load one org-owned row by id through the tenancy filter, or raise `<resource>_not_found`.
    With `share`, the row is read FOR SHARE (the latest committed version, waiting for a writer)
    and held so until the transaction ends, by the same statement: no round trip of its own."""
    row_id = parse_id(raw_id)
    if row_id is None:
        raise not_found(resource)
    stmt = _load_statement(model, share)
    found = (await db.execute(stmt, {"user_id": user_id, "row_id": row_id})).one_or_none()
    if found is None:
        raise not_found(resource)
    return Scoped(row=found[0], role=found[1], user_id=user_id)
