"""The one tenancy helper: every organization-owned row named by an id is loaded through
`load_scoped`, whose query joins the caller's membership of the row's organization.

A row of an organization the caller does not belong to is never selected, so it is simply not found
(404); existence never leaks. Lists run only after their organization, cluster or deployment was
loaded this way, and filter by its id. Role checks come after (`app/services/permissions.py`), on
the membership found by the same query. An API key has no membership: its rows are those of its
one organization (`KeyScope`), with the key's role.
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
class KeyScope:
    """What an API key may reach: its one organization, with its role there. A key caller has no
    membership; this stands in for it."""

    id: uuid.UUID
    organization_id: uuid.UUID
    role: Role
    name: str


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


# The statement of `load_scoped` per (model, share, key caller), built once: ids are bound per call.
_LOAD_STATEMENTS: dict[tuple[type[Any], bool, bool], Select[*tuple[Any, ...]]] = {}


def _load_statement(model: type[Any], share: bool, keyed: bool) -> Select[*tuple[Any, ...]]:
    cache_key = (model, share, keyed)
    stmt = _LOAD_STATEMENTS.get(cache_key)
    if stmt is None:
        org_column = Organization.id if model is Organization else model.organization_id
        if keyed:  # an API key: rows of its own organization, with the key's role (bound)
            stmt = select(model, bindparam("role", type_=Membership.role.type)).where(
                model.id == bindparam("row_id"), org_column == bindparam("organization_id")
            )
        else:  # the caller's membership of the row's organization: no membership, no row
            member = and_(
                Membership.organization_id == org_column,
                Membership.user_id == bindparam("user_id"),
            )
            stmt = (
                select(model, Membership.role)
                .join(Membership, member)
                .where(model.id == bindparam("row_id"))
            )
        if share:
            stmt = stmt.with_for_update(read=True, of=model)
        _LOAD_STATEMENTS[cache_key] = stmt
    return stmt


async def load_scoped(
    db: AsyncSession,
    model: type[T],
    raw_id: str | uuid.UUID,
    user_id: uuid.UUID,
    resource: str,
    *,
    share: bool = False,
    key: KeyScope | None = None,
) -> Scoped[T]:
    """Load one org-owned row by id through the tenancy filter, or raise `<resource>_not_found`.
    With `share`, the row is read FOR SHARE (the latest committed version, waiting for a writer)
    and held so until the transaction ends, by the same statement: no round trip of its own.
    With `key` (an API key caller, `user_id` its service account), the row must belong to the
    key's organization instead, and the key's role is the caller's."""
    row_id = parse_id(raw_id)
    if row_id is None:
        raise not_found(resource)
    stmt = _load_statement(model, share, key is not None)
    params: dict[str, Any] = {"user_id": user_id, "row_id": row_id}
    if key is not None:
        params.update(organization_id=key.organization_id, role=key.role)
    found = (await db.execute(stmt, params)).one_or_none()
    if found is None:
        raise not_found(resource)
    return Scoped(row=found[0], role=found[1], user_id=user_id)
