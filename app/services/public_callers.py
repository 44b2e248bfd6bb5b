"""Who an anonymous `/predict` call is (PUBLIC_PREDICT=true): the public caller of the default
deployment, a service account of its own. Predictions need someone to be created by, and giving
them the deployment owner's id would make strangers' predictions that person's own (theirs to
cancel, their Idempotency-Keys). Like an API key's, the account is a `users` row that no password
opens and no membership lists; it is made on first use and goes with its organization."""

import hashlib
import secrets
import uuid
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import hash_password
from app.models.user import User

# `.invalid` is reserved, and `:` is not allowed in usernames: no registration can take either.
_DOMAIN = "public-predict.invalid"


def _email(deployment_id: uuid.UUID) -> str:
    return f"{deployment_id}@{_DOMAIN}"


async def find(db: AsyncSession, deployment_id: uuid.UUID) -> uuid.UUID | None:
    """The public caller of this deployment, if anyone ever called it anonymously."""
    return await db.scalar(select(User.id).where(User.email == _email(deployment_id)))


async def find_or_create(db: AsyncSession, deployment_id: uuid.UUID) -> uuid.UUID:
    """The public caller of this deployment, made (and committed) on first use; two processes
    making it at once both get the one that won."""
    found = await find(db, deployment_id)
    if found is not None:
        return found
    account = User(
        id=uuid.uuid4(),
        username=f"public:{deployment_id.hex[:25]}",
        email=_email(deployment_id),
        password_hash=await hash_password(secrets.token_urlsafe(32)),
    )
    db.add(account)
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        winner = await find(db, deployment_id)
        if winner is None:
            raise
        return winner
    return account.id


async def delete_for(db: AsyncSession, deployment_ids: Iterable[uuid.UUID]) -> None:
    """Delete the public callers of these deployments (their organization is being deleted)."""
    emails = [_email(deployment_id) for deployment_id in deployment_ids]
    if emails:
        await db.execute(delete(User).where(User.email.in_(emails)))


def idempotency_key(address: str, key: str | None) -> str | None:
    """An anonymous caller's Idempotency-Key, scoped to its client address: all anonymous callers
    are one account, and one stranger must neither replay another's prediction nor spend their
    keys. Stored hashed (64 characters, within the column whatever the key's length)."""
    if key is None:
        return None
    return hashlib.sha256(f"{address}\n{key}".encode()).hexdigest()
