"""Organizations, invite codes and memberships. Callers have checked the role (the access
dependencies of app/api/deps.py, through app/services/permissions.py)."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete as delete_rows
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound, not_found
from app.core.security import new_invite_code, new_webhook_secret
from app.models.api_key import ApiKey
from app.models.cluster import Cluster
from app.models.deployment import Deployment
from app.models.organization import Membership, Organization, Role
from app.models.user import User
from app.services import audit, permissions, public_callers
from app.services.deployment_views import count_active
from app.services.locks import lock_clusters, lock_organization
from app.services.pagination import Page, paginate
from app.services.permissions import Action
from app.services.tenancy import KeyScope, Scoped, parse_id

OrgAccess = Scoped[Organization]


@dataclass(frozen=True, slots=True)
class Member:
    user_id: uuid.UUID
    username: str
    role: Role
    joined_at: datetime


async def create(db: AsyncSession, user_id: uuid.UUID, name: str) -> OrgAccess:
    org = Organization(
        id=uuid.uuid4(),
        name=name,
        invite_code=new_invite_code(),
        webhook_secret=new_webhook_secret(),
    )
    db.add(org)
    await db.flush()  # the membership's foreign key needs the organization row first
    db.add(Membership(organization_id=org.id, user_id=user_id, role=Role.admin))
    audit.record(db, org.id, "organization.created", ("organization", org.id), after={"name": name})
    await db.commit()
    return Scoped(row=org, role=Role.admin, user_id=user_id)


async def list_for_user(
    db: AsyncSession, user_id: uuid.UUID, page: Page, key: KeyScope | None = None
) -> tuple[list[OrgAccess], int]:
    """The caller's organizations: their memberships', or an API key's one organization."""
    if key is not None:
        only = select(Organization).where(Organization.id == key.organization_id)
        found, count = await paginate(db, only, page)
        return [Scoped(row=row[0], role=key.role, user_id=user_id) for row in found], count
    stmt = (
        select(Organization, Membership.role)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user_id)
        .order_by(Organization.created_at, Organization.id)
    )
    rows, total = await paginate(db, stmt, page)
    return [Scoped(row=org, role=role, user_id=user_id) for org, role in rows], total


async def delete(db: AsyncSession, access: OrgAccess) -> None:
    """Only an organization with no pending or running deployment can go. Its clusters are locked
    (in the usual order) so that no deployment is being created in one of them meanwhile."""
    await lock_organization(db, access.row.id)
    cluster_ids = await db.scalars(
        select(Cluster.id).where(Cluster.organization_id == access.row.id)
    )
    await lock_clusters(db, cluster_ids)
    if await count_active(db, access.row.id):
        raise Conflict(
            "organization_in_use", "The organization still has pending or running deployments."
        )
    # Its API keys go with it (cascade), and so must their service accounts and its deployments'
    # public callers, after the rows that name them as creator.
    accounts = list(
        await db.scalars(select(ApiKey.user_id).where(ApiKey.organization_id == access.row.id))
    )
    deployment_ids = list(
        await db.scalars(select(Deployment.id).where(Deployment.organization_id == access.row.id))
    )
    audit.record(
        db,
        access.row.id,
        "organization.deleted",
        ("organization", access.row.id),
        before={"name": access.row.name},
    )
    await db.delete(access.row)
    await db.flush()
    if accounts:
        await db.execute(delete_rows(User).where(User.id.in_(accounts)))
    await public_callers.delete_for(db, deployment_ids)
    await db.commit()


async def join(db: AsyncSession, user_id: uuid.UUID, invite_code: str) -> OrgAccess:
    org = await db.scalar(select(Organization).where(Organization.invite_code == invite_code))
    if org is None:
        raise NotFound("invite_code_not_found", "No organization has that invite code.")
    already = await db.scalar(
        select(Membership.role).where(
            Membership.organization_id == org.id, Membership.user_id == user_id
        )
    )
    if already is None:
        db.add(Membership(organization_id=org.id, user_id=user_id, role=Role.developer))
        audit.record(
            db, org.id, "membership.joined", ("user", user_id), after={"role": Role.developer}
        )
        try:
            await db.commit()
            return Scoped(row=org, role=Role.developer, user_id=user_id)
        except IntegrityError:
            await db.rollback()  # a concurrent join of the same user won
    raise Conflict("already_member", "You are already a member of this organization.")


async def rotate_invite_code(db: AsyncSession, access: OrgAccess) -> OrgAccess:
    access.row.invite_code = new_invite_code()
    audit.record(db, access.row.id, "organization.invite_rotated", ("organization", access.row.id))
    await db.commit()
    return access


async def list_members(db: AsyncSession, access: OrgAccess, page: Page) -> tuple[list[Member], int]:
    stmt = (
        select(Membership.user_id, User.username, Membership.role, Membership.joined_at)
        .join(User, User.id == Membership.user_id)
        .where(Membership.organization_id == access.row.id)
        .order_by(Membership.joined_at, Membership.user_id)
    )
    rows, total = await paginate(db, stmt, page)
    return [Member(*row) for row in rows], total


async def _lock_membership(db: AsyncSession, org_id: uuid.UUID, raw_user_id: str) -> Membership:
    """Lock the organization row first, in the usual order (`lock_organization`): role changes and
    removals serialize per organization, so two admins demoting each other at once cannot leave it
    with none (the second one counts the admins after the first has committed)."""
    await lock_organization(db, org_id)
    user_id = parse_id(raw_user_id)
    membership = None
    if user_id is not None:
        membership = await db.get(Membership, (org_id, user_id), populate_existing=True)
    if membership is None:
        raise not_found("member")
    return membership


async def _ensure_another_admin(db: AsyncSession, membership: Membership) -> None:
    if membership.role != Role.admin:
        return
    admins = await db.scalar(
        select(func.count())
        .select_from(Membership)
        .where(
            Membership.organization_id == membership.organization_id,
            Membership.role == Role.admin,
        )
    )
    if (admins or 0) <= 1:
        raise Conflict("last_admin", "An organization must keep at least one admin.")


async def change_role(db: AsyncSession, access: OrgAccess, raw_user_id: str, role: Role) -> Member:
    membership = await _lock_membership(db, access.row.id, raw_user_id)
    if role != Role.admin:
        await _ensure_another_admin(db, membership)
    before = membership.role
    membership.role = role
    username = await db.scalar(select(User.username).where(User.id == membership.user_id))
    audit.record(
        db,
        access.row.id,
        "membership.role_changed",
        ("user", membership.user_id),
        before={"role": before, "username": username},
        after={"role": role, "username": username},
    )
    await db.commit()
    return Member(membership.user_id, username or "", membership.role, membership.joined_at)


async def remove_member(db: AsyncSession, access: OrgAccess, raw_user_id: str) -> None:
    """Admins remove anyone; any member may remove themself (leave): the caller has checked
    `permissions.require_may_remove_member`."""
    membership = await _lock_membership(db, access.row.id, raw_user_id)
    await _ensure_another_admin(db, membership)
    leaving = membership.user_id == access.user_id
    audit.record(
        db,
        access.row.id,
        "membership.left" if leaving else "membership.removed",
        ("user", membership.user_id),
        before={"role": membership.role},
    )
    await db.delete(membership)
    await db.commit()


def can_see_invite_code(access: OrgAccess) -> bool:
    return permissions.allows(access.role, Action.see_invite_code)
