"""`mlops demo-seed`: the one deployment a demo of the classic `/predict` API serves, created
with the id DEFAULT_DEPLOYMENT_ID names, through the platform's own services (so the scheduler
places it and the audit log records it): an owner account, an organization "Demo", a cluster
"demo" and the deployment "demo". Each step finds what an earlier run made, so running it at
every start of the stack is safe."""

import logging
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.errors import SetupError
from app.core.security import hash_password
from app.db.migrations import require_head
from app.db.session import create_engine, create_sessionmaker
from app.models.cluster import Cluster
from app.models.deployment import Deployment, PreemptionPolicy
from app.models.organization import Membership, Organization, Role
from app.models.user import User
from app.scheduling import Resources
from app.services import clusters, deployments, organizations
from app.services.tenancy import Scoped, load_scoped

logger = logging.getLogger(__name__)

# The owner's username has a `:`, which registration refuses, and its address is under the
# reserved `.invalid`: no one can register either, and no password opens it.
OWNER_USERNAME = "demo:owner"
OWNER_EMAIL = "owner@demo.invalid"
CLUSTER_CAPACITY = Resources(cpu_millis=2000, ram_millis=4000, gpu=0)
DEPLOYMENT_REQUEST = Resources(cpu_millis=1000, ram_millis=1000, gpu=0)


@dataclass(frozen=True, slots=True)
class Seeded:
    deployment: Deployment
    organization: Organization
    created: bool  # False: it was there already


async def seed_database(settings: Settings, model: str) -> str:
    """`mlops demo-seed`: seed the database DATABASE_URL names (at the latest migration), and
    say what was done in a line."""
    if settings.default_deployment_id is None:
        raise SetupError("set DEFAULT_DEPLOYMENT_ID to the id the demo deployment should have")
    engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        await require_head(engine)
        async with create_sessionmaker(engine)() as db:
            seeded = await seed(db, settings.default_deployment_id, model)
    finally:
        await engine.dispose()
    deployment, org = seeded.deployment, seeded.organization
    if not deployment.status.is_active:
        logger.warning(
            "the demo deployment is %s and will not run again: /predict answers 503; seed a "
            "fresh one under another DEFAULT_DEPLOYMENT_ID (or on an empty database)",
            deployment.status,
        )
    verb = "seeded" if seeded.created else "already there"
    return (
        f"{verb}: deployment {deployment.name!r} ({deployment.model}, {deployment.status}) "
        f"id {deployment.id} in organization {org.name!r}; members join it with invite code "
        f"{org.invite_code}"
    )


async def seed(db: AsyncSession, deployment_id: uuid.UUID, model: str) -> Seeded:
    """The demo's deployment, created unless an earlier run made it. An id that names any other
    deployment is refused: the demo must not open (or print the invite code of) a tenant's."""
    owner = await _owner(db)
    existing = await db.get(Deployment, deployment_id)
    if existing is not None:
        if existing.created_by != owner:
            raise SetupError(
                f"DEFAULT_DEPLOYMENT_ID {deployment_id} names a deployment that mlops demo-seed "
                "did not create; give the demo an id of its own"
            )
        org = await db.get(Organization, existing.organization_id)
        assert org is not None  # a deployment's organization outlives it
        return Seeded(existing, org, created=False)
    org_access = await _organization(db, owner)
    cluster_access = await _cluster(db, org_access)
    new = deployments.NewDeployment(
        name="demo",
        model=model,
        resources=DEPLOYMENT_REQUEST,
        priority=0,
        preemption_policy=PreemptionPolicy.never,
        depends_on=(),
        id=deployment_id,
    )
    view = await deployments.create(db, cluster_access, owner, new)
    return Seeded(view.deployment, org_access.row, created=True)


async def _owner(db: AsyncSession) -> uuid.UUID:
    found = await db.scalar(select(User.id).where(User.email == OWNER_EMAIL))
    if found is not None:
        return found
    owner = User(
        id=uuid.uuid4(),
        username=OWNER_USERNAME,
        email=OWNER_EMAIL,
        password_hash=await hash_password(secrets.token_urlsafe(32)),
    )
    db.add(owner)
    try:
        await db.commit()
    except IntegrityError:  # another run made it meanwhile
        await db.rollback()
        return await _owner(db)
    return owner.id


async def _organization(db: AsyncSession, owner: uuid.UUID) -> Scoped[Organization]:
    org = await db.scalar(
        select(Organization)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == owner)
    )
    if org is not None:
        return Scoped(row=org, role=Role.admin, user_id=owner)
    return await organizations.create(db, owner, "Demo")


async def _cluster(db: AsyncSession, org: Scoped[Organization]) -> Scoped[Cluster]:
    cluster_id = await db.scalar(
        select(Cluster.id).where(Cluster.organization_id == org.row.id, Cluster.name == "demo")
    )
    if cluster_id is None:
        created = await clusters.create(db, org, "demo", CLUSTER_CAPACITY, None)
        cluster_id = created.row.id
    return await load_scoped(db, Cluster, cluster_id, org.user_id, "cluster")
