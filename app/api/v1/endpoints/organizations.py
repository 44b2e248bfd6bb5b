from fastapi import APIRouter, Response, status

from app.api.deps import (
    CurrentPerson,
    CurrentUser,
    DbSession,
    OrgForDeletion,
    OrgForInviteRotation,
    OrgForMemberList,
    OrgForMemberRemoval,
    OrgForReading,
    OrgForRoleChange,
    PageParams,
)
from app.core.rate_limit import rate_limit_scope
from app.schemas.common import error_responses
from app.schemas.organization import JoinIn, MemberOut, OrganizationIn, OrganizationOut, RoleIn
from app.services import organizations as org_service
from app.services.organizations import Member, OrgAccess

router = APIRouter(prefix="/organizations", tags=["organizations"])


def organization_out(access: OrgAccess) -> OrganizationOut:
    org = access.row
    return OrganizationOut(
        id=org.id,
        name=org.name,
        invite_code=org.invite_code if org_service.can_see_invite_code(access) else None,
        role=access.role,
        created_at=org.created_at,
    )


def member_out(member: Member) -> MemberOut:
    return MemberOut(
        user_id=member.user_id,
        username=member.username,
        role=member.role,
        joined_at=member.joined_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an organization (you become its admin)",
    responses=error_responses("not_authenticated", "forbidden", "validation_error", "rate_limited"),
)
async def create_organization(
    body: OrganizationIn, user: CurrentPerson, db: DbSession
) -> OrganizationOut:
    return organization_out(await org_service.create(db, user.id, body.name))


@router.get(
    "",
    summary="List your organizations",
    responses=error_responses("not_authenticated", "validation_error", "rate_limited"),
)
async def list_organizations(
    user: CurrentUser, db: DbSession, page: PageParams, response: Response
) -> list[OrganizationOut]:
    orgs, total = await org_service.list_for_user(db, user.id, page, user.api_key)
    response.headers["X-Total-Count"] = str(total)
    return [organization_out(access) for access in orgs]


@router.post(
    "/join",
    summary="Join an organization with its invite code",
    responses=error_responses(
        "not_authenticated",
        "forbidden",
        "invite_code_not_found",
        "already_member",
        "validation_error",
        "rate_limited",
    ),
)
@rate_limit_scope("join")
async def join_organization(body: JoinIn, user: CurrentPerson, db: DbSession) -> OrganizationOut:
    return organization_out(await org_service.join(db, user.id, body.invite_code))


@router.get(
    "/{org_id}",
    summary="Get an organization (invite code for admins only)",
    responses=error_responses("not_authenticated", "organization_not_found", "rate_limited"),
)
async def get_organization(access: OrgForReading) -> OrganizationOut:
    return organization_out(access)


@router.delete(
    "/{org_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an organization",
    responses=error_responses(
        "not_authenticated",
        "forbidden",
        "organization_not_found",
        "organization_in_use",
        "rate_limited",
    ),
)
async def delete_organization(access: OrgForDeletion, db: DbSession) -> None:
    await org_service.delete(db, access)


@router.post(
    "/{org_id}/invite-code",
    summary="Rotate the invite code (the old one stops working)",
    responses=error_responses(
        "not_authenticated", "forbidden", "organization_not_found", "rate_limited"
    ),
)
async def rotate_invite_code(access: OrgForInviteRotation, db: DbSession) -> OrganizationOut:
    return organization_out(await org_service.rotate_invite_code(db, access))


@router.get(
    "/{org_id}/members",
    summary="List members",
    responses=error_responses(
        "not_authenticated", "organization_not_found", "validation_error", "rate_limited"
    ),
)
async def list_members(
    access: OrgForMemberList, db: DbSession, page: PageParams, response: Response
) -> list[MemberOut]:
    members, total = await org_service.list_members(db, access, page)
    response.headers["X-Total-Count"] = str(total)
    return [member_out(m) for m in members]


@router.patch(
    "/{org_id}/members/{user_id}",
    summary="Change a member's role",
    responses=error_responses(
        "not_authenticated",
        "forbidden",
        "organization_not_found",
        "member_not_found",
        "last_admin",
        "validation_error",
        "rate_limited",
    ),
)
async def change_member_role(
    user_id: str, body: RoleIn, access: OrgForRoleChange, db: DbSession
) -> MemberOut:
    return member_out(await org_service.change_role(db, access, user_id, body.role))


@router.delete(
    "/{org_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a member, or leave (your own user id)",
    responses=error_responses(
        "not_authenticated",
        "forbidden",
        "organization_not_found",
        "member_not_found",
        "last_admin",
        "rate_limited",
    ),
)
async def remove_member(user_id: str, access: OrgForMemberRemoval, db: DbSession) -> None:
    await org_service.remove_member(db, access, user_id)
