"""What a preemption strategy is.

A strategy only chooses victims; the scheduler owns the queue, the fits check and the bookkeeping.
So a strategy is one small class, and the scheduler's guarantees (allocation within capacity,
fixpoint at the end of a pass) hold whatever it chooses, as long as it keeps one rule: victims have
strictly lower priority than the newcomer. That rule is what makes a pass terminate and what lets
`relevance_filter` bound which pending deployments a strategy could ever help.
"""

from __future__ import annotations

from typing import Protocol

from app.scheduling.entities import PendingDeployment, RunningDeployment
from app.scheduling.resources import Resources
from app.scheduling.running import RunningSet


class Strategy(Protocol):
    """Chooses which running deployments to evict for a pending one that does not fit.

    The class docstring's first line is the description `GET /scheduling/strategies` shows.
    """

    name: str
    # False for strategies that never evict: the scheduler and the relevance filter skip the
    # preemption path entirely instead of asking.
    evicts: bool
    # True when the victims are always those `reprieve.victims_in_tail` finds among the lowest
    # candidates: placement may then load only that tail instead of the whole running set.
    victims_from_tail: bool

    def select_victims(
        self, newcomer: PendingDeployment, running: RunningSet, available: Resources
    ) -> list[RunningDeployment] | None:
        """Victims (all of priority < newcomer.priority) whose eviction makes `newcomer` fit in
        every dimension, or None when no eviction is allowed or would make room."""
        ...
