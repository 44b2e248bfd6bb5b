"""Creating deployments: validated, stamped with their arrival time once, inserted and counted
under the cluster's lock, and placed, all in one transaction. Ending them is
`deployment_lifecycle`."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Unprocessable
from app.db.base import utcnow
from app.models.cluster import Cluster
from app.models.deployment import (
    Deployment,
    DeploymentDependency,
    DeploymentStatus,
    PreemptionPolicy,
)
from app.runtimes.catalog import is_known_model
from app.scheduling import Eviction, Resources
from app.scheduling.explain import WAITING_FOR_PROTECTION
from app.services import audit, placement
from app.services.decision_metrics import evictions_avoided, mark_dry_run
from app.services.deployment_arrival import arrive
from app.services.deployment_failures import fail
from app.services.deployment_views import DeploymentView, position_and_insight
from app.services.insight_shortcut import Insight
from app.services.locks import lock_organization
from app.services.pending_reasons import evictions_protection_avoids
from app.services.scheduling_insight import insights
from app.services.tenancy import Scoped, parse_id

PENDING = DeploymentStatus.pending


@dataclass(frozen=True, slots=True)
class NewDeployment:
    name: str
    model: str
    resources: Resources
    priority: int
    preemption_policy: PreemptionPolicy
    depends_on: Sequence[str]
    min_runtime_seconds: int | None = None
    max_runtime_seconds: int | None = None
    callback_url: str | None = None  # checked by the URL guard already
    id: uuid.UUID | None = None  # a fixed id (`mlops demo-seed`'s); None: a fresh one


def _unknown_dependency(message: str) -> Unprocessable:
    return Unprocessable("unknown_dependency", message, field="depends_on")


def _dependency_ids(raw: Sequence[str]) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    for value in raw:
        parsed = parse_id(value)
        if parsed is None:
            raise _unknown_dependency(f"Unknown dependency {value!r}.")
        if parsed not in ids:
            ids.append(parsed)
    return ids


async def create(
    db: AsyncSession, access: Scoped[Cluster], user_id: uuid.UUID, new: NewDeployment
) -> DeploymentView:
    deployment, dependency_ids, _ = await _arrive_and_place(db, access, user_id, new)
    audit.record(
        db,
        deployment.organization_id,
        "deployment.created",
        ("deployment", deployment.id),
        after={
            "name": new.name,
            "model": new.model,
            "cluster_id": str(deployment.cluster_id),
            "priority": new.priority,
            "status": deployment.status,
        },
    )
    await db.commit()
    view = await _view_of_new(db, deployment, dependency_ids)
    if view.insight is not None and view.insight.pending.reason == WAITING_FOR_PROTECTION:
        evictions_avoided(db.sync_session, await evictions_protection_avoids(db, deployment))
    return view


@dataclass(frozen=True, slots=True)
class Victim:
    id: uuid.UUID
    name: str
    priority: int
    preempted_by: uuid.UUID


@dataclass(frozen=True, slots=True)
class Rehearsal:
    """What creating the deployment would do now: its status and queue position right after,
    why it would wait, and whom it would evict."""

    deployment_id: uuid.UUID  # the id it had in the rehearsal, never written
    status: DeploymentStatus
    status_reason: str | None
    queue_position: int | None
    insight: Insight | None
    evicts: list[Victim]


async def rehearse(
    db: AsyncSession, access: Scoped[Cluster], user_id: uuid.UUID, new: NewDeployment
) -> Rehearsal:
    """A dry run: the creation itself, under the same locks, on the real data, in a transaction
    that is rolled back; no metric moves (`decision_metrics`)."""
    mark_dry_run(db.sync_session)
    try:
        deployment, dependency_ids, evictions = await _arrive_and_place(db, access, user_id, new)
        await db.flush()
        view = await _view_of_new(db, deployment, dependency_ids)
        return Rehearsal(
            deployment.id,
            deployment.status,
            view.status_reason,
            view.queue_position,
            view.insight,
            await _victims(db, evictions),
        )
    finally:
        await db.rollback()


async def _arrive_and_place(
    db: AsyncSession, access: Scoped[Cluster], user_id: uuid.UUID, new: NewDeployment
) -> tuple[Deployment, list[uuid.UUID], list[Eviction]]:
    # FIFO by arrival: stamped once, at entry, before any lock is waited for.
    arrived = utcnow()
    _validate(new)
    dependency_ids = _dependency_ids(new.depends_on)
    statuses: list[DeploymentStatus] = []
    if dependency_ids:
        # The lock order's first lock: no dependency can end (and miss this dependent in its
        # cascade) until this transaction commits. The cluster's follows in `arrive`.
        await lock_organization(db, access.row.organization_id)
        statuses = await _dependency_statuses(db, access.row.organization_id, dependency_ids)
    unmet = sum(status != DeploymentStatus.completed for status in statuses)
    deployment = _new_deployment(access.row, user_id, new, unmet, arrived)
    cluster = access.row
    started = await arrive(db, cluster, deployment, may_start=unmet == 0)
    _check_capacity(new, cluster)  # raising rolls the insert back
    db.add_all(
        DeploymentDependency(deployment_id=deployment.id, depends_on_id=dep, position=i)
        for i, dep in enumerate(dependency_ids)
    )
    now = utcnow()
    evictions: list[Eviction] = []
    if any(s in (DeploymentStatus.failed, DeploymentStatus.cancelled) for s in statuses):
        await db.flush()
        await db.run_sync(fail, [deployment.id], "dependency_failed", now)
        await db.refresh(deployment)
    elif unmet == 0 and not started:
        evictions = await db.run_sync(placement.place_newcomer, cluster, deployment, now)
    return deployment, dependency_ids, evictions


async def _victims(db: AsyncSession, evictions: list[Eviction]) -> list[Victim]:
    if not evictions:
        return []
    rows = await db.execute(
        select(Deployment.id, Deployment.name, Deployment.priority).where(
            Deployment.id.in_([e.victim_id for e in evictions])
        )
    )
    found = {row.id: row for row in rows}
    return [
        Victim(e.victim_id, found[e.victim_id].name, found[e.victim_id].priority, e.preemptor_id)
        for e in evictions
    ]


def _validate(new: NewDeployment) -> None:
    if not is_known_model(new.model):
        raise Unprocessable(
            "unknown_model", f"Unknown model {new.model!r}; see GET /api/v1/models.", field="model"
        )
    if new.resources.is_zero():
        raise Unprocessable(
            "validation_error", "A deployment must request some resources.", field="resources"
        )


def _check_capacity(new: NewDeployment, cluster: Cluster) -> None:
    if not new.resources.fits_in(cluster.capacity):
        raise Unprocessable(
            "exceeds_cluster_capacity",
            "The request is larger than the cluster's capacity; it could never run.",
            field="resources",
        )


def _new_deployment(
    cluster: Cluster, user_id: uuid.UUID, new: NewDeployment, unmet: int, now: datetime
) -> Deployment:
    """Every column set, none left to a default: `_insert_ready` inserts it by its values."""
    return Deployment(
        id=new.id or uuid.uuid4(),
        organization_id=cluster.organization_id,
        cluster_id=cluster.id,
        name=new.name,
        model=new.model,
        cpu_millis=new.resources.cpu_millis,
        ram_millis=new.resources.ram_millis,
        gpu=new.resources.gpu,
        priority=new.priority,
        preemption_policy=new.preemption_policy,
        status=PENDING,
        status_reason=None,
        unmet_dependencies=unmet,
        preemption_count=0,
        created_by=user_id,
        started_at=None,
        finished_at=None,
        serving_ready=None,
        serving_reason=None,
        serving_since=None,
        min_runtime_seconds=new.min_runtime_seconds,
        max_runtime_seconds=new.max_runtime_seconds,
        protected_until=None,
        stops_at=None,
        created_at=now,
        callback_url=new.callback_url,
    )


async def _view_of_new(
    db: AsyncSession, deployment: Deployment, dependency_ids: list[uuid.UUID]
) -> DeploymentView:
    """Its dependencies are known; only a queued newcomer has a queue position to look up."""
    if deployment.status != PENDING:
        return DeploymentView(deployment, dependency_ids, None)
    positions = {}
    if deployment.unmet_dependencies == 0:
        position, light = await position_and_insight(db, deployment)
        if light is not None:
            return DeploymentView(deployment, dependency_ids, position, light)
        positions[deployment.id] = position
    found = await insights(db, [deployment], positions)
    return DeploymentView(
        deployment, dependency_ids, positions.get(deployment.id), found.get(deployment.id)
    )


async def _dependency_statuses(
    db: AsyncSession, org_id: uuid.UUID, ids: list[uuid.UUID]
) -> list[DeploymentStatus]:
    if not ids:
        return []
    rows = (
        await db.execute(
            select(Deployment.id, Deployment.status).where(
                Deployment.id.in_(ids), Deployment.organization_id == org_id
            )
        )
    ).all()
    if len(rows) != len(ids):
        missing = sorted(set(ids) - {row[0] for row in rows})
        raise _unknown_dependency(f"Unknown dependency {missing[0]}.")
    return [row[1] for row in rows]
