"""Settings: production refuses the dev secret; database URLs mean what users expect."""

import json
import logging

import pytest
from pydantic import ValidationError

from app.core.config import DEV_SECRET_KEY, Settings
from app.core.logging import configure_logging
from app.core.security import (
    OWASP_MEMORY_KIB,
    OWASP_TIME_COST,
    hash_password,
    use_password_cost,
    verify_password,
)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


KEY = "0123456789abcdef" * 2  # 32 bytes, 16 distinct characters


@pytest.mark.parametrize(
    "secret", [DEV_SECRET_KEY, "", "change-me", KEY[:31], "s" * 32, "abcdefg" * 5]
)
def test_production_refuses_the_dev_secret_placeholders_and_short_keys(secret: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY must be set"):
        settings(environment="production", secret_key=secret)
    assert settings(environment="production", secret_key=KEY).secret_key == KEY


def test_production_with_a_real_secret_uses_secure_cookies() -> None:
    prod = settings(environment="production", secret_key=KEY * 2)
    assert prod.cookie_secure is True
    assert (
        settings(
            environment="production", secret_key=KEY * 2, session_cookie_secure=False
        ).cookie_secure
        is False
    )
    assert settings().cookie_secure is False


@pytest.mark.parametrize(
    ("memory_kib", "time_cost"), [(OWASP_MEMORY_KIB - 1, OWASP_TIME_COST), (OWASP_MEMORY_KIB, 1)]
)
def test_production_refuses_password_hashing_below_owasps_baseline(
    memory_kib: int, time_cost: int, caplog: pytest.LogCaptureFixture
) -> None:
    weak = {"password_hash_memory_kib": memory_kib, "password_hash_time_cost": time_cost}
    with pytest.raises(ValidationError, match="PASSWORD_HASH_MEMORY_KIB must be at least"):
        settings(environment="production", secret_key=KEY, **weak)
    with caplog.at_level(logging.WARNING):
        settings(**weak).warn_if_insecure()
    assert "weaker than OWASP" in caplog.text


async def test_passwords_are_hashed_at_owasps_baseline_by_default() -> None:
    defaults = settings()
    assert (defaults.password_hash_memory_kib, defaults.password_hash_time_cost) == (19456, 2)
    use_password_cost(defaults.password_hash_memory_kib, defaults.password_hash_time_cost)
    try:
        stored = await hash_password("correct-horse-42")
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        use_password_cost(64, 1)
        assert (await hash_password("x")).startswith("$argon2id$v=19$m=64,t=1,p=1$")
        # A hash carries its own cost: it verifies whatever the cost of new ones.
        assert await verify_password("correct-horse-42", stored)
    finally:
        use_password_cost(64, 1)  # the suite's cost (tests/conftest.py), as every app sets it


def test_dev_secret_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        settings().warn_if_insecure()
    assert "SECRET_KEY" in caplog.text


def test_production_refuses_public_predict_unless_acknowledged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployment = "5eed0000-0000-4000-8000-000000000001"
    public = {"default_deployment_id": deployment, "public_predict": True}
    with pytest.raises(ValidationError, match="PUBLIC_PREDICT_ACKNOWLEDGED=true"):
        settings(environment="production", secret_key=KEY, **public)
    acknowledged = settings(
        environment="production", secret_key=KEY, public_predict_acknowledged=True, **public
    )
    assert acknowledged.public_predict and str(acknowledged.default_deployment_id) == deployment
    assert settings(**public).public_predict  # outside production, a warning is enough
    with caplog.at_level(logging.WARNING):
        acknowledged.warn_if_insecure()
    assert f"predictions on deployment {deployment}" in caplog.text
    assert not settings().public_predict and settings().default_deployment_id is None


def test_an_empty_default_deployment_id_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_DEPLOYMENT_ID", "")
    assert settings().default_deployment_id is None
    monkeypatch.setenv("DEFAULT_DEPLOYMENT_ID", "not-a-uuid")
    with pytest.raises(ValidationError, match="default_deployment_id"):
        settings()


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_MAX_AGE", "60")
    monkeypatch.setenv("RATE_LIMIT_LOGIN", "5/minute")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1, 10.0.0.2")
    loaded = settings()
    assert loaded.session_max_age == 60
    assert loaded.rate_limit_login == "5/minute"
    assert loaded.trusted_proxies == ["10.0.0.1", "10.0.0.2"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///./data/x.db", "sqlite+aiosqlite:///./data/x.db"),
    ],
)
def test_database_urls_are_normalized(given: str, expected: str) -> None:
    assert settings(database_url=given).database_url == expected


def test_default_database_is_an_sqlite_file_under_data() -> None:
    assert settings().database_url == "sqlite+aiosqlite:///./data/mlops.db"


def test_logs_are_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("INFO")
        logging.getLogger("app.access").info(
            "request",
            extra={"method": "GET", "route": "/health", "status": 200, "duration_ms": 1.5},
        )
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    record = json.loads(line)
    assert {
        "time",
        "level",
        "message",
        "request_id",
        "method",
        "route",
        "status",
        "duration_ms",
    } <= set(record)
    assert record["level"] == "INFO"
