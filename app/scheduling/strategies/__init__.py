"""Registry of preemption strategies: adding one is one module plus one entry in `_ALL`."""

from __future__ import annotations

import inspect

from app.scheduling.strategies.base import Strategy
from app.scheduling.strategies.none import NoPreemption
from app.scheduling.strategies.priority import PriorityPreemption

DEFAULT_STRATEGY = "priority"

_ALL: tuple[Strategy, ...] = (PriorityPreemption(), NoPreemption())

# Strategies hold no state, so one shared instance each is enough.
STRATEGIES: dict[str, Strategy] = {strategy.name: strategy for strategy in _ALL}


class UnknownStrategy(KeyError):
    """No strategy is registered under this name (the API answers 422 `unknown_strategy`)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UnknownStrategy(name) from None


def describe(strategy: Strategy) -> str:
    """First line of the strategy class's docstring: the description the API shows."""
    doc = inspect.getdoc(type(strategy)) or ""
    return doc.splitlines()[0] if doc else ""


def list_strategies() -> list[tuple[str, str]]:
    """(name, description) for every registered strategy, in registration order."""
    return [(name, describe(strategy)) for name, strategy in STRATEGIES.items()]


__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "Strategy",
    "UnknownStrategy",
    "describe",
    "get_strategy",
    "list_strategies",
]
