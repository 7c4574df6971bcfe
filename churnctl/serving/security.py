"""Optional bearer-token authentication, the JSON content-type rule and what an answer may echo.

The token comes from the environment variable CHURNCTL_API_TOKEN or from the file named by the
serve option `api_token_file` (a Kubernetes Secret mounted as a file). Without either, the API
is open, as before. `/live`, `/ready`, `/docs` and `/openapi.json` are always open (probes and
the contract, no data); `/metrics` needs the token only with the option `protect_metrics`.
"""

from __future__ import annotations

import hmac
import os
import re
from pathlib import Path
from typing import Any

TOKEN_ENV = "CHURNCTL_API_TOKEN"
OPEN_PATHS = frozenset({"/live", "/ready", "/docs", "/openapi.json"})
DOCS_ASSETS = "/docs/static/"
ECHO_LIMIT = 100  # characters of a client-given value an answer may repeat
_PATH = re.compile(r"(?<![\w.:/])/[^\s'\",;:()\[\]]+")


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text`, cut to `limit` characters with a note of how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def public_reason(text: str | None) -> str:
    """A reason fit for an unauthenticated answer: no filesystem paths, bounded length."""
    return shorten(_PATH.sub("<path>", text or ""), 300)


def load_token(token_file: str | None) -> str | None:
    """The API token, or None (authentication off). A named but empty or missing source is an
    error: a typo must not leave the API open."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read api_token_file: {exc.strerror}") from None
        if not token:
            raise ValueError("api_token_file is empty")
        return token
    if TOKEN_ENV in os.environ:
        token = os.environ[TOKEN_ENV].strip()
        if not token:
            raise ValueError(f"{TOKEN_ENV} is set but empty")
        return token
    return None


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type header is `application/json` (parameters such as charset allowed)."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


class TokenAuth:
    """Pure ASGI middleware: 401 unless `Authorization: Bearer <token>` on a protected path."""

    def __init__(self, app: Any, token: str, protect_metrics: bool = False) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.open = OPEN_PATHS if protect_metrics else OPEN_PATHS | {"/metrics"}

    def allowed(self, scope: dict[str, Any]) -> bool:
        path = scope["path"]
        if path in self.open or path.startswith(DOCS_ASSETS):
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self.expected)
        return False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.allowed(scope):
            await self.app(scope, receive, send)
            return
        body = b'{"message":"missing or wrong bearer token (Authorization: Bearer ...)",' \
               b'"detail":null}'
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="churnctl"')]})
        await send({"type": "http.response.body", "body": body})
