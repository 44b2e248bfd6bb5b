import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, CreatedAt, UUIDPrimaryKey


class PredictionStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"

    @property
    def is_done(self) -> bool:
        return self in (PredictionStatus.completed, PredictionStatus.failed)


class Prediction(UUIDPrimaryKey, CreatedAt, Base):
    """Every prediction is a row: the API inserts it (durable before any answer), workers claim it
    with a lease, run the model and record the outcome exactly once."""

    __tablename__ = "predictions"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE")
    )
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    model: Mapped[str] = mapped_column(String(64))
    input: Mapped[str] = mapped_column(Text)
    status: Mapped[PredictionStatus] = mapped_column(
        Enum(PredictionStatus, native_enum=False, create_constraint=True, length=16)
    )
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # The lease: a worker owns a running row until `lease_expires_at`; a dead worker's rows are
    # requeued once (`attempts` counts claims), then failed with a reason.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        # Idempotency is enforced by the database, not by a read-then-write.
        UniqueConstraint(
            "created_by",
            "deployment_id",
            "idempotency_key",
            name="uq_predictions_idempotency",
        ),
        Index(
            "ix_predictions_queue",
            "created_at",
            "id",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        Index(
            "ix_predictions_leases",
            "lease_expires_at",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
        Index(
            "ix_predictions_open_by_deployment",
            "deployment_id",
            postgresql_where=text("status IN ('queued', 'running')"),
            sqlite_where=text("status IN ('queued', 'running')"),
        ),
        Index("ix_predictions_listing", "deployment_id", "created_at", "id"),
        # The retention job's walk, oldest finished first.
        Index(
            "ix_predictions_finished",
            "completed_at",
            postgresql_where=text("status IN ('completed', 'failed')"),
            sqlite_where=text("status IN ('completed', 'failed')"),
        ),
    )
