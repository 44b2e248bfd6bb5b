"""Accounts and server-side sessions."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.core.errors import Conflict, InvalidCredentials, WrongPassword
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
from app.services.tenancy import KeyScope


@dataclass(frozen=True, slots=True)
class OrganizationRole:
    id: uuid.UUID
    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in user, with their memberships, or an API key's service account with its one
    organization: what every authenticated request needs, loaded in one round trip."""

    id: uuid.UUID
    username: str
    email: str
    created_at: datetime
    organizations: tuple[OrganizationRole, ...]
    # Set when the caller is an API key (its service account is the user above).
    api_key: KeyScope | None = None


# Built once: the hottest statement of the service (every authenticated request runs it).
_PRINCIPAL = (
    select(
        User.id,
        User.username,
        User.email,
        User.created_at,
        Organization.id.label("organization_id"),
        Organization.name,
        Membership.role,
    )
    .select_from(UserSession)
    .join(User, User.id == UserSession.user_id)
    .outerjoin(Membership, Membership.user_id == User.id)
    .outerjoin(Organization, Organization.id == Membership.organization_id)
    .where(
        UserSession.token_hash == bindparam("token_hash"),
        UserSession.expires_at > bindparam("now"),
    )
    .order_by(Organization.created_at, Organization.id)
)


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


async def _lock_user(db: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The user's row, read afresh under a row lock (`FOR NO KEY UPDATE`, so rows that merely
    reference the user are not blocked) that logins and password changes take before they write.
    A login whose verified hash is no longer the stored one lost a race with a password change and
    is refused; a password change that commits after a login deletes that login's session. Either
    way no session opened with the old password outlives the change. (SQLite has no row locks:
    `BEGIN IMMEDIATE` serializes these transactions there.)"""
    user: User | None = await db.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return user


async def _credentials(db: AsyncSession, username: str) -> tuple[uuid.UUID, str] | None:
    """The id and password hash of the account named `username`, in a transaction that ends
    before the caller verifies the password: argon2id runs while no lock is held (on SQLite, every
    transaction holds the database's write lock)."""
    row = (
        await db.execute(
            select(User.id, User.password_hash).where(func.lower(User.username) == username.lower())
        )
    ).one_or_none()
    await db.rollback()
    return None if row is None else (row.id, row.password_hash)


async def login(
    db: AsyncSession,
    username: str,
    password: str,
    max_age_seconds: int,
    replacing: str | None = None,
) -> tuple[User, str]:
    """Verify credentials and open a new session; returns the user and the session token.

    `replacing` is the token of the session this browser signed in with before, if any: it is
    revoked in the same transaction, whoever it belonged to, so logging in again rotates the
    session instead of leaving the old cookie valid. A failed login revokes nothing."""
    found = await _credentials(db, username)
    valid = await verify_password(password, found[1] if found else None)
    if found is None or not valid:
        raise InvalidCredentials()
    user_id, verified_hash = found
    user = await _lock_user(db, user_id)
    if user is None or user.password_hash != verified_hash:
        raise InvalidCredentials()  # the password changed (or the account went) meanwhile
    now = utcnow()
    token = new_session_token()
    revoked = (UserSession.user_id == user_id) & (UserSession.expires_at <= now)
    if replacing is not None:
        revoked = revoked | (UserSession.token_hash == hash_session_token(replacing))
    await db.execute(delete(UserSession).where(revoked))
    db.add(
        UserSession(
            token_hash=hash_session_token(token),
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(seconds=max_age_seconds),
        )
    )
    await db.commit()
    return user, token


async def change_password(
    db: AsyncSession, user_id: uuid.UUID, token: str, current_password: str, new_password: str
) -> None:
    """Replace the password of a signed-in user who proved they know the current one, and revoke
    every other session of theirs; the session `token` that made the change stays valid."""
    stored = await db.scalar(select(User.password_hash).where(User.id == user_id))
    await db.rollback()  # argon2id below runs outside any transaction, as at login
    if stored is None or not await verify_password(current_password, stored):
        raise WrongPassword()
    new_hash = await hash_password(new_password)
    user = await _lock_user(db, user_id)
    if user is None or user.password_hash != stored:
        # Another change won the race: the password just verified is no longer the current one.
        raise WrongPassword()
    user.password_hash = new_hash
    await db.execute(
        delete(UserSession).where(
            UserSession.user_id == user_id, UserSession.token_hash != hash_session_token(token)
        )
    )
    await db.commit()


async def principal_for_session(conn: AsyncConnection, token: str) -> Principal | None:
    """The user behind a live session, or None if the session is unknown, revoked or expired.
    Runs on a plain connection, not an ORM session: it is one read, on every request."""
    rows = (
        await conn.execute(_PRINCIPAL, {"token_hash": hash_session_token(token), "now": utcnow()})
    ).all()
    if not rows:
        return None
    first = rows[0]
    return Principal(
        id=first.id,
        username=first.username,
        email=first.email,
        created_at=first.created_at,
        organizations=tuple(
            OrganizationRole(row.organization_id, row.name, row.role)
            for row in rows
            if row.organization_id is not None
        ),
    )


_EXPIRED_AT = select(UserSession.expires_at).where(
    UserSession.token_hash == bindparam("token_hash"),
    UserSession.expires_at <= bindparam("now"),
)


async def session_expired_at(conn: AsyncConnection, token: str) -> datetime | None:
    """When the session behind `token` expired, if that is why `principal_for_session` found no
    one; None for a session that never existed or was revoked. Asked only after that lookup failed,
    so a valid session never pays for it."""
    expired_at: datetime | None = await conn.scalar(
        _EXPIRED_AT, {"token_hash": hash_session_token(token), "now": utcnow()}
    )
    return expired_at


async def logout(db: AsyncSession, token: str) -> None:
    await db.execute(delete(UserSession).where(UserSession.token_hash == hash_session_token(token)))
    await db.commit()


async def logout_everywhere(db: AsyncSession, user_id: uuid.UUID) -> None:
    """Revoke every session of the user, the caller's own included."""
    await db.execute(delete(UserSession).where(UserSession.user_id == user_id))
    await db.commit()
