"""What is held for preemptors waiting for their victims to leave (graceful preemption).

A preemptor whose victims are still leaving needs, when they have left, its request: part of it
comes from them, the rest must still be free then. That rest is reserved for it out of what is
free now: its request minus what its victims hold, per dimension. It is derived from the running
set each time (the victims carry `preempted_by`), never stored, so it cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from app.scheduling.entities import PendingDeployment, RunningDeployment
from app.scheduling.reprieve import deficit
from app.scheduling.resources import Resources


def incoming(running: Iterable[RunningDeployment]) -> dict[UUID, Resources]:
    """Per waiting preemptor: what its leaving victims hold."""
    found: dict[UUID, Resources] = {}
    for run in running:
        if run.preempted_by is not None:
            found[run.preempted_by] = found.get(run.preempted_by, Resources.zero()) + run.resources
    return found


def reservations(
    running: Iterable[RunningDeployment], pending: Iterable[PendingDeployment]
) -> dict[UUID, Resources]:
    """Per pending preemptor with victims still leaving: what is held for it out of `available`."""
    leaving = incoming(running)
    return {
        item.id: deficit(item.resources, leaving[item.id]) for item in pending if item.id in leaving
    }
