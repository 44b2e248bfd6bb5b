"""Schemathesis hooks for the fuzzing drill (tests/drills/test_fuzz.py), loaded by `st run` through
`SCHEMATHESIS_HOOKS`. The drill passes what it set up in `FUZZ_WORLD` (JSON): the server, a
member's credentials and the ids of their organization, cluster, deployment and prediction.

- Path parameters are the real ids nine times in ten (so that the fuzzed bodies reach the
  handlers behind the tenancy check, and each operation is sure to get there within a few
  examples) and whatever schemathesis generated otherwise (404s); the coverage phase adds its own
  malformed ids.
- Every request is signed in as that member; the session is renewed when a fuzzed request ended
  it (a logout, "sign out everywhere").
- Every error is in the contract's shape, with a code the contract lists."""

import json
import os
from typing import Any

import httpx
import schemathesis
from hypothesis import strategies as st

from app.schemas.classic import PREDICTION_NOT_FOUND, PREDICTION_PENDING
from app.schemas.common import ERROR_CODES

WORLD: dict[str, Any] = json.loads(os.environ.get("FUZZ_WORLD", "{}"))
# Codes answered by layers outside the route table (the framework's catch-all).
OTHER_CODES = {"http_error"}
CLASSIC_ERRORS = [{"error": PREDICTION_NOT_FOUND}, {"error": PREDICTION_PENDING}]


@schemathesis.hook
def flatmap_path_parameters(_ctx: Any, parameters: dict[str, Any] | None) -> Any:
    if not parameters:
        return st.just(parameters)
    real = {name: WORLD["ids"][name] for name in parameters if name in WORLD.get("ids", {})}
    return st.sampled_from([{**parameters, **real}] * 9 + [parameters])


@schemathesis.auth(refresh_interval=1)
class MemberSession:
    """The member's session cookie, checked once a second (`refresh_interval`) and renewed when
    a fuzzed request revoked it."""

    def __init__(self) -> None:
        self.cookie: str | None = None

    def get(self, _case: Any, _ctx: Any) -> str:
        base = WORLD["base_url"]
        if self.cookie is not None:
            me = httpx.get(f"{base}/api/v1/auth/me", cookies={"session": self.cookie})
            if me.status_code == 200:
                return self.cookie
        login = httpx.post(f"{base}/api/v1/auth/login", json=WORLD["credentials"])
        login.raise_for_status()
        self.cookie = login.cookies["session"]
        return self.cookie

    def set(self, case: Any, data: str, _ctx: Any) -> None:
        case.cookies = {**(case.cookies or {}), "session": data}


@schemathesis.check
def error_in_the_contracts_shape(_ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code < 400 or case.path == "/ready":
        return None  # /ready's 503 is a probe's answer: {"status", "reason"}
    text = response.content.decode("utf-8", "replace")
    assert "Traceback" not in text, "a traceback in an error body"
    body = json.loads(text)
    if case.path.startswith("/predict") and body in CLASSIC_ERRORS:
        return True  # the classic API's own bodies, word for word (app/schemas/classic.py)
    assert isinstance(body, dict) and set(body) >= {"error", "code"}, f"not the error shape: {text}"
    assert isinstance(body["error"], str) and body["error"], "no error sentence"
    assert body["code"] in ERROR_CODES or body["code"] in OTHER_CODES, (
        f"unknown code {body['code']}"
    )
    return True
