"""Passwords (argon2id via the passlib API) and session tokens (random, signed, hashed at rest)."""

import base64
import hashlib
import secrets
from functools import cache

import anyio.to_thread
from itsdangerous import BadSignature, Signer
from passlib.context import CryptContext

# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): strong, yet cheap enough to keep
# login latency and memory bounded under a burst of sign-ins.
OWASP_MEMORY_KIB = 19456
OWASP_TIME_COST = 2


@cache
def _context(memory_kib: int, time_cost: int) -> CryptContext:
    return CryptContext(
        schemes=["argon2"],
        argon2__type="ID",
        argon2__memory_cost=memory_kib,
        argon2__time_cost=time_cost,
        argon2__parallelism=1,
    )


_cost = (OWASP_MEMORY_KIB, OWASP_TIME_COST)


def use_password_cost(memory_kib: int, time_cost: int) -> None:
    """Sets the argon2id cost of new hashes, for the whole process (`create_app` applies the
    settings; production refuses less than OWASP's baseline). A hash carries its own parameters,
    so hashes made at another cost still verify."""
    global _cost
    _cost = (memory_kib, time_cost)


def password_context() -> CryptContext:
    """The passlib context that hashes and verifies at the process's current cost."""
    return _context(*_cost)


@cache
def _dummy_hash(cost: tuple[int, int]) -> str:
    """Verifying an unknown user's password against this makes "no such user" cost the same time
    as "wrong password", so response timing does not reveal which usernames exist."""
    dummy: str = _context(*cost).hash(secrets.token_urlsafe(16))
    return dummy


INVITE_CODE_BYTES = 16  # 128 random bits, 22 URL-safe characters
SESSION_TOKEN_BYTES = 32
WEBHOOK_SECRET_BYTES = 24


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(password_context().hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Constant-work check: an absent hash is verified against a dummy and always fails."""
    passwords = password_context()
    if password_hash is None:
        await anyio.to_thread.run_sync(passwords.verify, password, _dummy_hash(_cost))
        return False
    return await anyio.to_thread.run_sync(passwords.verify, password, password_hash)


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 24 random bytes in base64 (192 bits)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(WEBHOOK_SECRET_BYTES)).decode()


API_KEY_PREFIX = "mlops_"  # recognisable in logs and by secret scanners
API_KEY_BYTES = 32  # 256 random bits
API_KEY_SHOWN = 14  # the prefix listed with a key: `mlops_` and 8 characters of it


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_BYTES)


def new_invite_code() -> str:
    return secrets.token_urlsafe(INVITE_CODE_BYTES)


def new_session_token() -> str:
    return secrets.token_urlsafe(SESSION_TOKEN_BYTES)


def hash_session_token(token: str) -> str:
    """SHA-256 suffices for 256 random bits (no dictionary to try); API keys are hashed alike."""
    return hashlib.sha256(token.encode()).hexdigest()


class CookieSigner:
    """Signs the opaque session token with SECRET_KEY so tampered cookies are rejected unread."""

    def __init__(self, secret_key: str) -> None:
        self._signer = Signer(secret_key, salt="session-cookie")

    def sign(self, token: str) -> str:
        return self._signer.sign(token).decode()

    def unsign(self, cookie: str) -> str | None:
        try:
            return self._signer.unsign(cookie).decode()
        except BadSignature:
            return None
