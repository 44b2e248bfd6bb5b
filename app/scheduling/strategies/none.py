"""The `none` strategy: a full cluster makes newcomers wait, whatever their priority."""

from __future__ import annotations

from app.scheduling.entities import PendingDeployment, RunningDeployment
from app.scheduling.resources import Resources
from app.scheduling.running import RunningSet


class NoPreemption:
    """Never evict: pending deployments wait for room, in priority order."""

    name = "none"
    evicts = False
    victims_from_tail = False

    def select_victims(
        self, newcomer: PendingDeployment, running: RunningSet, available: Resources
    ) -> list[RunningDeployment] | None:
        return None
