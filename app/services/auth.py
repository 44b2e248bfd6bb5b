"""Accounts and server-side sessions."""

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, InvalidCredentials
from app.core.security import (
    hash_password,
    hash_session_token,
    new_session_token,
    verify_password,
)
from app.db.base import utcnow
from app.models.organization import Membership, Organization, Role
from app.models.session import UserSession
from app.models.user import User


@dataclass(frozen=True, slots=True)
class OrganizationRole:
    organization: Organization
    role: Role


async def _raise_if_taken(db: AsyncSession, username: str, email: str) -> None:
    rows = await db.execute(
        select(func.lower(User.username), User.email).where(
            or_(func.lower(User.username) == username.lower(), User.email == email)
        )
    )
    for taken_username, taken_email in rows:
        if taken_username == username.lower():
            raise Conflict("username_taken", "That username is already taken.")
        if taken_email == email:
            raise Conflict("email_taken", "That email address is already registered.")


async def register(db: AsyncSession, username: str, email: str, password: str) -> User:
    email = email.lower()
    await _raise_if_taken(db, username, email)
    user = User(username=username, email=email, password_hash=await hash_password(password))
    db.add(user)
    try:
        await db.commit()
    except IntegrityError:
        # A concurrent registration won the race between our check and our insert.
        await db.rollback()
        await _raise_if_taken(db, username, email)
        raise
    return user


async def login(
    db: AsyncSession, username: str, password: str, max_age_seconds: int
) -> tuple[User, str]:
    """Verify credentials and open a new session; returns the user and the session token."""
    user = await db.scalar(select(User).where(func.lower(User.username) == username.lower()))
    valid = await verify_password(password, user.password_hash if user else None)
    if user is None or not valid:
        raise InvalidCredentials()
    now = utcnow()
    token = new_session_token()
    await db.execute(
        delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= now)
    )
    db.add(
        UserSession(
            token_hash=hash_session_token(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(seconds=max_age_seconds),
        )
    )
    await db.commit()
    return user, token


async def user_for_session(db: AsyncSession, token: str) -> User | None:
    """The user behind a live session, or None if the session is unknown, revoked or expired."""
    return await db.scalar(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            UserSession.token_hash == hash_session_token(token),
            UserSession.expires_at > utcnow(),
        )
    )


async def logout(db: AsyncSession, token: str) -> None:
    await db.execute(delete(UserSession).where(UserSession.token_hash == hash_session_token(token)))
    await db.commit()


async def organizations_of(db: AsyncSession, user_id: uuid.UUID) -> list[OrganizationRole]:
    rows = await db.execute(
        select(Organization, Membership.role)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user_id)
        .order_by(Organization.created_at, Organization.id)
    )
    return [OrganizationRole(org, role) for org, role in rows]
