"""ORM models; importing this package registers every table on Base.metadata (Alembic reads it)."""

from app.models.organization import Membership, Organization, Role
from app.models.session import UserSession
from app.models.user import User

__all__ = ["Membership", "Organization", "Role", "User", "UserSession"]
