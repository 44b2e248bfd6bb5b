"""Settings: the contract's Configuration table, read once from the environment."""

import ipaddress
import logging
import uuid
from functools import cached_property
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.security import OWASP_MEMORY_KIB, OWASP_TIME_COST

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105 - the documented dev default
DEFAULT_DATABASE_URL = "sqlite:///./data/mlops.db"
# In production a key is refused unless it has this many bytes (UTF-8) of this many distinct
# characters: less is a placeholder (`change-me`), guessable, or one character repeated.
MIN_PRODUCTION_SECRET_BYTES = 32
MIN_PRODUCTION_SECRET_DISTINCT = 8

logger = logging.getLogger(__name__)


def normalize_database_url(url: str) -> str:
    """Plain `postgresql://` means psycopg 3; plain `sqlite://` means aiosqlite."""
    for plain, driver in (
        ("postgresql://", "postgresql+psycopg://"),
        ("postgres://", "postgresql+psycopg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def comma_separated(value: str) -> list[str]:
    """The entries of a comma-separated setting, trimmed, empty ones dropped."""
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def is_weak_secret(secret: str) -> bool:
    """The dev value, fewer than 32 bytes of key material (UTF-8: 16 `é` are 32 bytes, 31 ASCII
    characters are not), or a key of few characters repeated (`a` 32 times)."""
    return (
        secret == DEV_SECRET_KEY
        or len(secret.encode("utf-8", "surrogatepass")) < MIN_PRODUCTION_SECRET_BYTES
        or len(set(secret)) < MIN_PRODUCTION_SECRET_DISTINCT
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    secret_key: str = DEV_SECRET_KEY
    # argon2id's cost for new password hashes; less than OWASP's baseline only outside production
    # (the test suite, which hashes thousands of passwords).
    password_hash_memory_kib: int = Field(default=OWASP_MEMORY_KIB, ge=8)
    password_hash_time_cost: int = Field(default=OWASP_TIME_COST, ge=1)

    session_cookie_name: str = "session"
    session_max_age: int = Field(default=1800, gt=0)
    session_cookie_secure: bool | None = None

    rate_limit_enabled: bool = True
    rate_limit_default: str = "600/minute"
    rate_limit_login: str = "10/minute"
    rate_limit_join: str = "20/minute"
    rate_limit_predict: str = "120/minute"
    rate_limit_storage_uri: str = "memory://"
    forwarded_allow_ips: str = "127.0.0.1"

    worker_in_process: bool = True
    log_level: str = "INFO"
    # Processes `mlops serve` starts when --workers is not given; by default one per core on
    # PostgreSQL, and 1 on SQLite, which serializes writers anyway.
    web_concurrency: int | None = Field(default=None, ge=1)
    # Where serving processes keep their metrics so that a scrape sums them (prometheus-client's
    # multiprocess mode). `mlops serve` sets it for several processes; it empties the directory
    # at start, so use one directory per server.
    prometheus_multiproc_dir: str | None = None

    mock_delay_min: float = Field(default=10.0, ge=0)
    mock_delay_max: float = Field(default=17.0, ge=0)
    distilbert_model: str = "distilbert-base-uncased-finetuned-sst-2-english"
    batch_max_size: int = Field(default=32, ge=1, le=1024)
    batch_max_wait_ms: float = Field(default=5.0, ge=0)
    ollama_host: str = "http://127.0.0.1:11434"
    ollama_model: str = "gemma3:1b"
    ollama_timeout: float = Field(default=120.0, gt=0)
    # How long a worker owns a claimed prediction before another may take it over; renewed
    # while the model runs, so only a dead worker lets it lapse.
    prediction_lease_seconds: float = Field(default=30.0, gt=0)
    # Finished predictions (completed or failed) older than this are deleted by the workers, in
    # batches; 0 keeps them forever. Queued and running ones are never deleted.
    prediction_retention_days: float = Field(default=30.0, ge=0)
    # A synchronous predict waits at most this long, then answers 202 with the prediction id.
    sync_predict_timeout: float = Field(default=300.0, gt=0)
    # The largest `ttl_seconds` and `timeout_seconds` a prediction may ask for.
    prediction_max_ttl_seconds: int = Field(default=86_400, ge=1)
    prediction_max_timeout_seconds: int = Field(default=3_600, ge=1)

    # Callbacks (signed webhooks). Hosts a callback_url may name: comma-separated names, `*.`
    # suffixes or IP addresses; empty allows any host. Private, loopback, link-local and other
    # non-public addresses are refused unless inside WEBHOOK_ALLOWED_NETWORKS (CIDRs).
    webhook_allowed_hosts: str = ""
    webhook_allowed_networks: str = ""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Failed deliveries are retried after base * 2^(attempt-1) seconds (capped at max) until
    # this long after the prediction finished.
    webhook_retry_window_seconds: float = Field(default=86_400.0, gt=0)
    webhook_backoff_base_seconds: float = Field(default=5.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3_600.0, gt=0)

    # The classic single-model API (`POST /predict`, `GET /predict/{id}`): the deployment it
    # serves (unset: 404), and whether anonymous callers may use it.
    default_deployment_id: uuid.UUID | None = None
    public_predict: bool = False
    public_predict_acknowledged: bool = False

    @field_validator("default_deployment_id", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        # `DEFAULT_DEPLOYMENT_ID=` (as compose writes `${DEFAULT_DEPLOYMENT_ID:-}`) is unset.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _normalize_database_url(cls, url: str) -> str:
        return normalize_database_url(url)

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _check_webhook_networks(cls, networks: str) -> str:
        for entry in comma_separated(networks):
            ipaddress.ip_network(entry, strict=False)  # its ValueError names the entry
        return networks

    @model_validator(mode="after")
    def _check_mock_delays(self) -> "Settings":
        if self.mock_delay_max < self.mock_delay_min:
            raise ValueError("MOCK_DELAY_MAX must not be below MOCK_DELAY_MIN")
        return self

    @model_validator(mode="after")
    def _refuse_dev_secret_in_production(self) -> "Settings":
        if self.environment == "production" and is_weak_secret(self.secret_key):
            raise ValueError(
                f"SECRET_KEY must be set to a random value of at least "
                f"{MIN_PRODUCTION_SECRET_BYTES} bytes with at least "
                f"{MIN_PRODUCTION_SECRET_DISTINCT} distinct characters when ENVIRONMENT=production "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return self

    @model_validator(mode="after")
    def _refuse_weak_password_hashing_in_production(self) -> "Settings":
        weak = (
            self.password_hash_memory_kib < OWASP_MEMORY_KIB
            or self.password_hash_time_cost < OWASP_TIME_COST
        )
        if self.environment == "production" and weak:
            raise ValueError(
                f"PASSWORD_HASH_MEMORY_KIB must be at least {OWASP_MEMORY_KIB} and "
                f"PASSWORD_HASH_TIME_COST at least {OWASP_TIME_COST} when ENVIRONMENT=production"
            )
        return self

    @model_validator(mode="after")
    def _refuse_unacknowledged_public_predict_in_production(self) -> "Settings":
        if (
            self.environment == "production"
            and self.public_predict
            and not self.public_predict_acknowledged
        ):
            raise ValueError(
                "PUBLIC_PREDICT=true lets anyone who can reach the service run predictions on "
                "DEFAULT_DEPLOYMENT_ID without signing in; with ENVIRONMENT=production it also "
                "needs PUBLIC_PREDICT_ACKNOWLEDGED=true"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def cookie_secure(self) -> bool:
        """Production defaults to Secure cookies unless explicitly turned off."""
        if self.session_cookie_secure is None:
            return self.environment == "production"
        return self.session_cookie_secure

    @cached_property
    def trusted_proxies(self) -> list[str]:
        return [ip.strip() for ip in self.forwarded_allow_ips.split(",") if ip.strip()]

    def warn_if_insecure(self) -> None:
        if self.secret_key == DEV_SECRET_KEY:
            logger.warning(
                "SECRET_KEY is the built-in development value: sessions can be forged. "
                "Set SECRET_KEY before exposing this service."
            )
        if self.environment != "test" and (
            self.password_hash_memory_kib < OWASP_MEMORY_KIB
            or self.password_hash_time_cost < OWASP_TIME_COST
        ):
            logger.warning(
                "Password hashes are weaker than OWASP's argon2id baseline "
                "(PASSWORD_HASH_MEMORY_KIB / PASSWORD_HASH_TIME_COST): fit for tests only."
            )
        if self.public_predict:
            logger.warning(
                "PUBLIC_PREDICT=true: anyone who can reach this service may run predictions on "
                "deployment %s through /predict without signing in (limited per address).",
                self.default_deployment_id,
            )
