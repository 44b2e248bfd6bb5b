import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UUIDPrimaryKey, utcnow


class AuditEntry(UUIDPrimaryKey, Base):
    """One state-changing action, written in the transaction of the change itself. No foreign
    keys: the record outlives what it names (a deleted organization's deletion included)."""

    __tablename__ = "audit_log"

    organization_id: Mapped[uuid.UUID]
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_type: Mapped[str] = mapped_column(String(16))  # "user" or "api_key"
    actor_id: Mapped[uuid.UUID]
    actor_name: Mapped[str] = mapped_column(String(100))  # as it was then
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[uuid.UUID | None]
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(128))  # X-Request-ID: 1-128

    __table_args__ = (Index("ix_audit_log_listing", "organization_id", "at", "id"),)
