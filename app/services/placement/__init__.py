"""Where the pure scheduler meets the database.

- `statements`: the SQL placement runs and the mappers from its rows to the scheduler's types;
- `newcomer`: placing one new deployment, usually without loading anything;
- `passes`: the general incremental pass and the application of its decision.

The caller holds the cluster's row lock (`app/services/locks.py`) for the whole transaction.
"""

from app.services.placement.newcomer import place_newcomer
from app.services.placement.passes import evict, reschedule, reschedule_sync, reserved_total

__all__ = ["evict", "place_newcomer", "reschedule", "reschedule_sync", "reserved_total"]
