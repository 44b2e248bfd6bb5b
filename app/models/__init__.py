"""ORM models; importing this package registers every table on Base.metadata (Alembic reads it)."""

from app.models.api_key import ApiKey
from app.models.audit import AuditEntry
from app.models.cluster import Cluster
from app.models.deployment import (
    Deployment,
    DeploymentDependency,
    DeploymentEvent,
    DeploymentStatus,
    PreemptionPolicy,
)
from app.models.organization import Membership, Organization, Role
from app.models.prediction import Prediction, PredictionStatus, WebhookAttempt, WebhookState
from app.models.session import UserSession
from app.models.user import User
from app.models.worker import WorkerHeartbeat

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Cluster",
    "Deployment",
    "DeploymentDependency",
    "DeploymentEvent",
    "DeploymentStatus",
    "Membership",
    "Organization",
    "Prediction",
    "PredictionStatus",
    "PreemptionPolicy",
    "Role",
    "User",
    "UserSession",
    "WebhookAttempt",
    "WebhookState",
    "WorkerHeartbeat",
]
