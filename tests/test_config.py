"""Settings: production refuses the dev secret; database URLs mean what users expect."""

import json
import logging

import pytest
from pydantic import ValidationError

from app.core.config import DEV_SECRET_KEY, Settings
from app.core.logging import configure_logging


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


def test_dev_secret_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        settings().warn_if_insecure()
    assert "SECRET_KEY" in caplog.text


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
