"""An organization's webhook signing secret (`whsec_` and 192 random bits, made with the
organization): admins read it to verify callbacks, and rotate it when it may have leaked.
Callers have checked the role (`OrgForWebhookSecret`)."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import new_webhook_secret
from app.models.organization import Organization
from app.services import audit
from app.services.tenancy import Scoped


def current_secret(access: Scoped[Organization]) -> str:
    return access.row.webhook_secret


async def rotate_secret(db: AsyncSession, access: Scoped[Organization]) -> str:
    """A new secret replaces the old one at once: every attempt that starts after the commit,
    retries of earlier predictions included, is signed with the new one (one already under way
    keeps the old), and the old one verifies nothing after that."""
    access.row.webhook_secret = new_webhook_secret()
    organization = ("organization", access.row.id)
    audit.record(db, access.row.id, "organization.webhook_secret_rotated", organization)
    await db.commit()
    return access.row.webhook_secret
