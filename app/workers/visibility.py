"""What a worker tells the rest of the system about itself: that it is alive (a heartbeat), and
whether it can serve the models of the running deployments it would run (their serving state)."""

import logging
from collections.abc import Collection
from datetime import datetime

from app.db.base import utcnow
from app.services import serving_state, worker_heartbeats
from app.services.prediction_states import Sessions
from app.workers.runtime_pool import RuntimePool

logger = logging.getLogger(__name__)

SERVING_CHECK_SECONDS = 5.0


class Visibility:
    def __init__(
        self, worker_id: str, sessions: Sessions, pool: RuntimePool, models: Collection[str] | None
    ) -> None:
        self.worker_id = worker_id
        self.sessions = sessions
        self.pool = pool
        self.models = models
        self.started_at: datetime = utcnow()
        # The last verdict per model, to log a change once rather than every check.
        self._verdicts: dict[str, tuple[bool, str | None]] = {}

    async def beat(self) -> None:
        await worker_heartbeats.beat(self.sessions, self.worker_id, self.models, self.started_at)

    async def forget(self) -> None:
        await worker_heartbeats.forget(self.sessions, self.worker_id)

    async def check_serving(self) -> None:
        """Check every model a running deployment of ours uses; record what changed."""
        running = await serving_state.running_by_model(self.sessions, self.models)
        for model, deployment_ids in sorted(running.items()):
            health = await self.pool.readiness(model, deployment_ids)
            verdict = (health.available, None if health.available else health.detail)
            await serving_state.record_verdict(self.sessions, model, *verdict, utcnow())
            if self._verdicts.get(model) != verdict:
                self._verdicts[model] = verdict
                if health.available:
                    logger.info("model can serve", extra={"model": model})
                else:
                    logger.warning("model cannot serve: %s", health.detail, extra={"model": model})
