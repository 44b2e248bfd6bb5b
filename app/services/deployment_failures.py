"""Failing pending deployments, and the cascade: their pending dependents fail with
`dependency_failed`, and theirs in turn (rule 6 of the scheduling semantics)."""

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models.cluster import Cluster
from app.models.deployment import Deployment, DeploymentDependency, DeploymentStatus
from app.services.deployment_events import record
from app.services.prediction_states import end_for_deployments


def fail(session: Session, ids: Iterable[uuid.UUID], reason: str, now: datetime) -> None:
    """Fail pending deployments, then their pending dependents (`dependency_failed`), and theirs
    in turn, keeping every touched cluster's pending count right."""
    session.flush()  # count updates below are atomic SQL; in-memory changes must be in first
    frontier, why = list(ids), reason
    while frontier:
        rows = session.execute(
            update(Deployment)
            .where(Deployment.id.in_(frontier), Deployment.status == DeploymentStatus.pending)
            .values(status=DeploymentStatus.failed, status_reason=why, finished_at=now)
            .returning(Deployment.id, Deployment.cluster_id)
        ).all()
        per_cluster: dict[uuid.UUID, int] = {}
        for deployment_id, cluster_id in rows:
            record(session, deployment_id, "failed", now, reason=why)
            per_cluster[cluster_id] = per_cluster.get(cluster_id, 0) + 1
        for cluster_id, count in sorted(per_cluster.items()):
            # Atomic decrement: another cluster's row may be locked by a plain create right now.
            session.execute(
                update(Cluster)
                .where(Cluster.id == cluster_id)
                .values(pending_count=Cluster.pending_count - count)
            )
        failed_ids = [row[0] for row in rows]
        if not failed_ids:
            return
        end_for_deployments(session, failed_ids, now)
        frontier = list(
            session.scalars(
                select(DeploymentDependency.deployment_id).where(
                    DeploymentDependency.depends_on_id.in_(failed_ids)
                )
            )
        )
        why = "dependency_failed"
