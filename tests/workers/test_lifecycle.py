"""The worker inside an API process waits for the schema instead of failing every second: a
serve with --no-migrate may come up while a migration job is still running."""

import asyncio
import logging
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager

from app.db.migrations import upgrade_to_head
from app.workers import lifecycle
from tests.support.api import AppFactory


async def test_the_in_process_worker_starts_once_the_schema_is_at_head(
    app_factory: AppFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lifecycle, "SCHEMA_POLL_SECONDS", 0.05)
    url = f"sqlite:///{tmp_path / 'later.db'}"
    app = app_factory(database_url=url, worker_in_process=True)
    with caplog.at_level(logging.WARNING):
        async with LifespanManager(app):
            await asyncio.sleep(0.3)
            assert app.state.worker._tasks == [], "started on an unmigrated database"
            await asyncio.to_thread(upgrade_to_head, url)
            for _ in range(100):
                if app.state.worker._tasks:
                    break
                await asyncio.sleep(0.05)
            assert app.state.worker._tasks, "never started after the migrations ran"
    waits = [r for r in caplog.records if "waits until" in r.getMessage()]
    assert len(waits) == 1, "said once, not every poll"
    assert "mlops migrate" in waits[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info], "no traceback while waiting"
