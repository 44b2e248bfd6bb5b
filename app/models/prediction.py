import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, CreatedAt, UUIDPrimaryKey


class PredictionStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"  # by its caller or an admin: no result, even one that came later
    expired = "expired"  # its ttl passed before a worker started it: it never ran

    @property
    def is_done(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        PredictionStatus.completed,
        PredictionStatus.failed,
        PredictionStatus.cancelled,
        PredictionStatus.expired,
    }
)
_FINAL_SQL = "status IN ('completed', 'failed', 'cancelled', 'expired')"


class WebhookState(enum.StrEnum):
    """Where the callback of a prediction that has a `callback_url` stands."""

    pending = "pending"  # the prediction is not finished yet, or a retry is due at webhook_next_at
    delivered = "delivered"  # the receiver answered 2xx
    failed = "failed"  # refused (SSRF guard), or no attempt succeeded within the retry window


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
    # Deadlines: not started by `expires_at` (ttl), it expires without running; running longer
    # than `timeout_seconds` (counted from `started_at`), it fails.
    expires_at: Mapped[datetime | None]
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    # The signed callback once it is finished: a delivery lease or the next retry in
    # `webhook_next_at`, the attempts made so far (each one a `WebhookAttempt` row).
    callback_url: Mapped[str | None] = mapped_column(Text)
    webhook_state: Mapped[WebhookState | None] = mapped_column(
        Enum(WebhookState, native_enum=False, create_constraint=True, length=16)
    )
    webhook_next_at: Mapped[datetime | None]
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

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
            postgresql_where=text(_FINAL_SQL),
            sqlite_where=text(_FINAL_SQL),
        ),
        # The sweeper's walks: queued rows whose ttl passes, running rows with a timeout.
        Index(
            "ix_predictions_ttl",
            "expires_at",
            postgresql_where=text("status = 'queued' AND expires_at IS NOT NULL"),
            sqlite_where=text("status = 'queued' AND expires_at IS NOT NULL"),
        ),
        Index(
            "ix_predictions_timeouts",
            "started_at",
            postgresql_where=text("status = 'running' AND timeout_seconds IS NOT NULL"),
            sqlite_where=text("status = 'running' AND timeout_seconds IS NOT NULL"),
        ),
        # The webhook dispatcher's walk: callbacks not yet delivered.
        Index(
            "ix_predictions_webhooks_pending",
            "webhook_next_at",
            postgresql_where=text("webhook_state = 'pending'"),
            sqlite_where=text("webhook_state = 'pending'"),
        ),
    )


class WebhookAttempt(Base):
    """One delivery attempt of a prediction's callback: when, to where, and how it went."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    prediction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("prediction_id", "attempt", name="uq_webhook_attempts_attempt"),
    )
