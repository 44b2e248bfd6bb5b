import enum
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, CreatedAt, UUIDPrimaryKey, utcnow
from app.scheduling.entities import NO_LIMITS, RuntimeLimits
from app.scheduling.ordering import QUEUE, REPRIEVE, Order
from app.scheduling.resources import Resources


class DeploymentStatus(enum.StrEnum):
    pending = "pending"
    running = "running"
    # Being evicted gracefully: holds its resources, takes no new predictions, until `evict_at`.
    preempting = "preempting"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_active(self) -> bool:
        return self in ACTIVE


ACTIVE = (DeploymentStatus.pending, DeploymentStatus.running, DeploymentStatus.preempting)
# Statuses that hold resources on their cluster.
HOLDING = (DeploymentStatus.running, DeploymentStatus.preempting)


class PreemptionPolicy(enum.StrEnum):
    preempt_lower_priority = "preempt_lower_priority"
    never = "never"


def _index_elements(order: Order) -> list[Any]:
    return [text(f"{name} DESC") if descending else name for name, descending in order.fields]


class Deployment(UUIDPrimaryKey, CreatedAt, Base):
    __tablename__ = "deployments"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    cluster_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(64))
    cpu_millis: Mapped[int] = mapped_column(BigInteger)
    ram_millis: Mapped[int] = mapped_column(BigInteger)
    gpu: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer)
    preemption_policy: Mapped[PreemptionPolicy] = mapped_column(
        Enum(PreemptionPolicy, native_enum=False, create_constraint=True, length=32)
    )
    status: Mapped[DeploymentStatus] = mapped_column(
        Enum(DeploymentStatus, native_enum=False, create_constraint=True, length=16)
    )
    status_reason: Mapped[str | None] = mapped_column(String(32))
    # Dependencies not yet completed: the scheduler only sees pending rows where this is 0,
    # which keeps "dependencies met" an indexable condition.
    unmet_dependencies: Mapped[int] = mapped_column(Integer, default=0)
    preemption_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Each run: protected from eviction for `min_runtime_seconds`, completed after
    # `max_runtime_seconds`. While running, `protected_until` (cleared by the sweeper once
    # passed, in the transaction that reschedules the cluster) and `stops_at`.
    min_runtime_seconds: Mapped[int | None] = mapped_column(Integer)
    max_runtime_seconds: Mapped[int | None] = mapped_column(Integer)
    protected_until: Mapped[datetime | None]
    stops_at: Mapped[datetime | None]
    # While `preempting`: when it leaves, and for whom (a deployment id; not a foreign key, the
    # preemptor may be deleted with its cluster first).
    evict_at: Mapped[datetime | None]
    preempted_by: Mapped[uuid.UUID | None]
    # Can the workers serve this running deployment's model? Their verdict since `serving_since`
    # (null: no worker has checked since it started), with an actionable reason when they cannot.
    serving_ready: Mapped[bool | None]
    serving_reason: Mapped[str | None] = mapped_column(String(500))
    serving_since: Mapped[datetime | None]
    # Where its predictions' results are POSTed when they ask for no `callback_url` of their own.
    callback_url: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("priority >= 0 AND priority <= 1000", name="priority"),
        CheckConstraint("cpu_millis >= 0 AND ram_millis >= 0 AND gpu >= 0", name="resources"),
        CheckConstraint("unmet_dependencies >= 0", name="unmet_dependencies"),
        CheckConstraint(
            "(min_runtime_seconds IS NULL OR min_runtime_seconds > 0) AND "
            "(max_runtime_seconds IS NULL OR max_runtime_seconds > 0)",
            name="runtime_limits",
        ),
        # The queue, in scheduling order: only pending deployments whose dependencies are met.
        Index(
            "ix_deployments_queue",
            "cluster_id",
            *_index_elements(QUEUE),
            postgresql_where=text("status = 'pending' AND unmet_dependencies = 0"),
            sqlite_where=text("status = 'pending' AND unmet_dependencies = 0"),
        ),
        # Deployments holding resources (running, preempting) of a cluster, lowest first (reverse
        # reprieve order): preemption candidates are a prefix, read in the order in which
        # placement loads the tail of them.
        Index(
            "ix_deployments_running",
            "cluster_id",
            *_index_elements(REPRIEVE.reversed()),
            postgresql_where=text("status IN ('running', 'preempting')"),
            sqlite_where=text("status IN ('running', 'preempting')"),
        ),
        # Pending deployments still waiting for dependencies: few, and counted to rank a deployment
        # deep in the queue from its end (`pending_count` - these - the queue behind it).
        Index(
            "ix_deployments_waiting",
            "cluster_id",
            postgresql_where=text("status = 'pending' AND unmet_dependencies > 0"),
            sqlite_where=text("status = 'pending' AND unmet_dependencies > 0"),
        ),
        # The sweeper's two questions: which runs reached their deadline, whose protection ended.
        # (Both columns are cleared when the run ends, so these index only live runs.)
        Index(
            "ix_deployments_stops_at",
            "stops_at",
            postgresql_where=text("stops_at IS NOT NULL"),
            sqlite_where=text("stops_at IS NOT NULL"),
        ),
        Index(
            "ix_deployments_evict_at",
            "evict_at",
            postgresql_where=text("status = 'preempting'"),
            sqlite_where=text("status = 'preempting'"),
        ),
        Index(
            "ix_deployments_protected_until",
            "protected_until",
            postgresql_where=text("protected_until IS NOT NULL"),
            sqlite_where=text("protected_until IS NOT NULL"),
        ),
        Index("ix_deployments_cluster_listing", "cluster_id", "created_at", "id"),
        Index("ix_deployments_org_listing", "organization_id", "created_at", "id"),
    )

    @property
    def resources(self) -> Resources:
        return Resources(self.cpu_millis, self.ram_millis, self.gpu)

    @property
    def may_preempt(self) -> bool:
        return self.preemption_policy == PreemptionPolicy.preempt_lower_priority

    @property
    def limits(self) -> RuntimeLimits:
        return limits_of(self.min_runtime_seconds, self.max_runtime_seconds)


def limits_of(min_seconds: int | None, max_seconds: int | None) -> RuntimeLimits:
    if min_seconds is None and max_seconds is None:
        return NO_LIMITS
    return RuntimeLimits(
        None if min_seconds is None else timedelta(seconds=min_seconds),
        None if max_seconds is None else timedelta(seconds=max_seconds),
    )


def sql_order(order: Order, source: Any = None) -> tuple[Any, ...]:
    """`order` as an ORDER BY over deployments, or over `source` (a subquery's `.c`) with the same
    column names."""
    columns = [getattr(Deployment if source is None else source, name) for name, _ in order.fields]
    return tuple(
        column.desc() if descending else column
        for column, (_, descending) in zip(columns, order.fields, strict=True)
    )


QUEUE_ORDER_BY = sql_order(QUEUE)
LOWEST_FIRST = sql_order(REPRIEVE.reversed())  # preemption candidates, victims first


class DeploymentDependency(Base):
    """`deployment_id` depends on `depends_on_id`. Fixed at creation, so the graph has no cycles."""

    __tablename__ = "deployment_dependencies"

    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    depends_on_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)


class DeploymentEvent(Base):
    """The history of a deployment. The integer key keeps insertion order for equal `at`."""

    __tablename__ = "deployment_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE")
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    type: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    # A deployment's events in their order (its events route reads a range of it without a sort);
    # a cluster's events read one range per deployment of the cluster, and a `since` bound is an
    # index condition there, so the heap is read only for the events at or after it.
    __table_args__ = (Index("ix_deployment_events_listing", "deployment_id", "at", "id"),)
