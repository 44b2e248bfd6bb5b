import uuid

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, CreatedAt, UUIDPrimaryKey
from app.scheduling.resources import Resources

_DIMENSIONS = ("cpu_millis", "ram_millis", "gpu")


class Cluster(UUIDPrimaryKey, CreatedAt, Base):
    """A pool of capacity. `allocated_*` is the sum of its running deployments' resources,
    maintained in the same transaction that starts or stops them (under this row's lock), and the
    database refuses any state where it would leave [0, capacity]."""

    __tablename__ = "clusters"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    preemption_strategy: Mapped[str] = mapped_column(String(32))
    capacity_cpu_millis: Mapped[int] = mapped_column(BigInteger)
    capacity_ram_millis: Mapped[int] = mapped_column(BigInteger)
    capacity_gpu: Mapped[int] = mapped_column(Integer)
    allocated_cpu_millis: Mapped[int] = mapped_column(BigInteger, default=0)
    allocated_ram_millis: Mapped[int] = mapped_column(BigInteger, default=0)
    allocated_gpu: Mapped[int] = mapped_column(Integer, default=0)
    pending_count: Mapped[int] = mapped_column(Integer, default=0)
    running_count: Mapped[int] = mapped_column(Integer, default=0)
    # Deployments being evicted gracefully (they still hold their resources, in `allocated_*`).
    preempting_count: Mapped[int] = mapped_column(Integer, default=0)
    # 0: evictions are immediate. Otherwise victims enter `preempting` for this long.
    preemption_grace_seconds: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        UniqueConstraint("organization_id", "name", name="uq_clusters_organization_id_name"),
        *(
            CheckConstraint(
                f"allocated_{d} >= 0 AND allocated_{d} <= capacity_{d}", name=f"allocated_{d}"
            )
            for d in _DIMENSIONS
        ),
        CheckConstraint("pending_count >= 0 AND running_count >= 0", name="counts"),
        CheckConstraint("preempting_count >= 0", name="preempting_count"),
        CheckConstraint(
            "preemption_grace_seconds >= 0 AND preemption_grace_seconds <= 86400",
            name="preemption_grace_seconds",
        ),
    )

    @property
    def capacity(self) -> Resources:
        return Resources(self.capacity_cpu_millis, self.capacity_ram_millis, self.capacity_gpu)

    @capacity.setter
    def capacity(self, value: Resources) -> None:
        self.capacity_cpu_millis = value.cpu_millis
        self.capacity_ram_millis = value.ram_millis
        self.capacity_gpu = value.gpu

    @property
    def allocated(self) -> Resources:
        return Resources(self.allocated_cpu_millis, self.allocated_ram_millis, self.allocated_gpu)

    @allocated.setter
    def allocated(self, value: Resources) -> None:
        self.allocated_cpu_millis = value.cpu_millis
        self.allocated_ram_millis = value.ram_millis
        self.allocated_gpu = value.gpu

    @property
    def available(self) -> Resources:
        return self.capacity - self.allocated
