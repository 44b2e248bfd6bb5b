"""API keys: service accounts' credentials. An organization admin creates one with a role (viewer
or developer, never admin) and sees its secret once; the database keeps only its SHA-256. Each key
has its own `users` row, which no password opens, so what it creates is created by it and "your
own" means the key's own. Every request looks its key up afresh, so a revocation or an expiry
takes effect on the next request in every process."""

import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.core.errors import Unprocessable
from app.core.security import API_KEY_SHOWN, hash_password, hash_session_token, new_api_key
from app.db.base import utcnow
from app.models.api_key import ApiKey
from app.models.organization import Organization, Role
from app.models.user import User
from app.services import audit
from app.services.auth import OrganizationRole, Principal
from app.services.pagination import Page, paginate
from app.services.tenancy import KeyScope, Scoped

# last_used_at is written at most this often per key: a write on every request would cost more
# than the lookup itself, and "used in the last minute" is what anyone asks of it.
LAST_USED_PRECISION = timedelta(minutes=1)
ASSIGNABLE_ROLES = (Role.viewer, Role.developer)


async def create(
    db: AsyncSession,
    access: Scoped[Organization],
    name: str,
    role: Role,
    expires_at: datetime | None,
) -> tuple[ApiKey, str]:
    """The new key and its secret, which is not stored and cannot be shown again."""
    if role not in ASSIGNABLE_ROLES:
        raise Unprocessable(message="An API key's role is viewer or developer.", field="role")
    if expires_at is not None and expires_at <= utcnow():
        raise Unprocessable(message="expires_at must be in the future.", field="expires_at")
    key_id, secret = uuid.uuid4(), new_api_key()
    # Its service account: a username and an address no registration can take (`:` is not
    # allowed in usernames, `.invalid` is reserved), and the hash of a password nobody knows.
    account = User(
        id=uuid.uuid4(),
        username=f"key:{key_id.hex[:28]}",
        email=f"{key_id}@api-keys.invalid",
        password_hash=await hash_password(secrets.token_urlsafe(32)),
    )
    key = ApiKey(
        id=key_id,
        organization_id=access.row.id,
        user_id=account.id,
        name=name,
        role=role,
        prefix=secret[:API_KEY_SHOWN],
        key_hash=hash_session_token(secret),
        created_by=access.user_id,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    db.add(account)
    await db.flush()  # the account before the key that references it
    db.add(key)
    summary = {"name": name, "role": role.value, "prefix": key.prefix}
    audit.record(db, access.row.id, "api_key.created", ("api_key", key_id), after=summary)
    await db.commit()
    return key, secret


async def list_for_org(
    db: AsyncSession, access: Scoped[Organization], page: Page
) -> tuple[list[ApiKey], int]:
    stmt = (
        select(ApiKey)
        .where(ApiKey.organization_id == access.row.id)
        .order_by(ApiKey.created_at, ApiKey.id)
    )
    rows, total = await paginate(db, stmt, page)
    return [row[0] for row in rows], total


async def revoke(db: AsyncSession, access: Scoped[ApiKey]) -> None:
    """Revoked for good; revoking a revoked key again changes nothing."""
    key = access.row
    revoked = await db.scalar(  # guarded: of two revocations at once, one writes (and audits)
        update(ApiKey)
        .where(ApiKey.id == key.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .returning(ApiKey.id)
        .execution_options(synchronize_session=False)
    )
    if revoked is not None:
        audit.record(
            db,
            key.organization_id,
            "api_key.revoked",
            ("api_key", key.id),
            before={"name": key.name, "role": key.role.value, "prefix": key.prefix},
        )
    await db.commit()


# One round trip: the key, if live, with its service account and its organization.
_PRINCIPAL = (
    select(
        ApiKey.id,
        ApiKey.organization_id,
        ApiKey.role,
        ApiKey.name,
        ApiKey.last_used_at,
        User.id.label("user_id"),
        User.username,
        User.email,
        User.created_at,
        Organization.name.label("organization_name"),
    )
    .join(User, User.id == ApiKey.user_id)
    .join(Organization, Organization.id == ApiKey.organization_id)
    .where(
        ApiKey.key_hash == bindparam("key_hash"),
        ApiKey.revoked_at.is_(None),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > bindparam("now")),
    )
)
_TOUCH = (
    update(ApiKey).where(ApiKey.id == bindparam("key_id")).values(last_used_at=bindparam("now"))
)


async def principal_for_key(conn: AsyncConnection, secret: str) -> Principal | None:
    """The service account behind a live key, or None for a key unknown, revoked or expired."""
    now = utcnow()
    row = (
        await conn.execute(_PRINCIPAL, {"key_hash": hash_session_token(secret), "now": now})
    ).one_or_none()
    if row is None:
        return None
    if row.last_used_at is None or row.last_used_at < now - LAST_USED_PRECISION:
        await conn.execute(_TOUCH, {"key_id": row.id, "now": now})
        await conn.commit()
    scope = KeyScope(row.id, row.organization_id, row.role, row.name)
    return Principal(
        id=row.user_id,
        username=row.username,
        email=row.email,
        created_at=row.created_at,
        organizations=(OrganizationRole(row.organization_id, row.organization_name, row.role),),
        api_key=scope,
    )


_REFUSED = select(ApiKey.revoked_at, ApiKey.expires_at).where(
    ApiKey.key_hash == bindparam("key_hash")
)


async def why_refused(conn: AsyncConnection, secret: str) -> str:
    """Why `principal_for_key` found no one, in words; asked only on the way to a 401."""
    row = (await conn.execute(_REFUSED, {"key_hash": hash_session_token(secret)})).one_or_none()
    if row is None:
        return "The API key is not valid."
    if row.revoked_at is not None:
        return "The API key was revoked."
    at = row.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") if row.expires_at else "?"
    return f"The API key expired at {at}."
