import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, CreatedAt, UUIDPrimaryKey, utcnow


class Role(enum.StrEnum):
    viewer = "viewer"
    developer = "developer"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, required: "Role") -> bool:
        return self.rank >= required.rank


_RANK = {Role.viewer: 0, Role.developer: 1, Role.admin: 2}


class Organization(UUIDPrimaryKey, CreatedAt, Base):
    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(100))
    invite_code: Mapped[str] = mapped_column(String(64), unique=True)
    # Signs its prediction callbacks (Standard Webhooks, `whsec_...`); admins rotate it.
    webhook_secret: Mapped[str] = mapped_column(String(64))


class Membership(Base):
    __tablename__ = "memberships"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, create_constraint=True, name="role", length=16)
    )
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
