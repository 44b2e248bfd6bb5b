"""The pure scheduler: plain data in, decisions out. No database, no clock, no randomness."""

from app.scheduling.entities import Decision, Eviction, PendingDeployment, RunningDeployment
from app.scheduling.incremental import schedule_incremental
from app.scheduling.relevance import Band, RelevanceFilter, relevance_filter
from app.scheduling.resources import Resources, total
from app.scheduling.running import RunningSet
from app.scheduling.scheduler import Fetch, schedule
from app.scheduling.strategies import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    Strategy,
    UnknownStrategy,
    get_strategy,
    list_strategies,
)

__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "Band",
    "Decision",
    "Eviction",
    "Fetch",
    "PendingDeployment",
    "RelevanceFilter",
    "Resources",
    "RunningDeployment",
    "RunningSet",
    "Strategy",
    "UnknownStrategy",
    "get_strategy",
    "list_strategies",
    "relevance_filter",
    "schedule",
    "schedule_incremental",
    "total",
]
