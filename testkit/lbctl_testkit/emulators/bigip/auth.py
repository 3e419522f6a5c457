"""Basic and token authentication (docs/upstream.md#big-ip-auth), pure: the clock is injected."""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from typing import Any, Callable

from .errors import IcrError

MAX_TIMEOUT = 36000   # [unverified] cap on PATCH {"timeout": n}


@dataclass
class Token:
    token: str
    user: str
    timeout: int
    last_update: float
    expires: float
    generation: int = 1

    def render(self) -> dict[str, Any]:
        return {"token": self.token, "name": self.token, "userName": self.user,
                "authProviderName": "tmos", "timeout": self.timeout, "partition": "[All]",
                "generation": self.generation,
                "lastUpdateMicros": int(self.last_update * 1_000_000),
                "expirationMicros": int(self.expires * 1_000_000),
                "kind": "shared:authz:tokens:authtokenitemstate",
                "selfLink": f"https://localhost/mgmt/shared/authz/tokens/{self.token}"}


def unauthorized(message: str) -> IcrError:
    return IcrError(401, message, framework=True)


class Auth:
    def __init__(self, users: dict[str, str], clock: Callable[[], float],
                 token_timeout: int = 1200) -> None:
        self.users = dict(users)
        self.clock = clock
        self.token_timeout = token_timeout
        self.tokens: dict[str, Token] = {}
        self.logins = 0

    def login(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or self.users.get(body.get("username")) is None or \
                self.users[body["username"]] != body.get("password"):
            raise unauthorized("Authentication failed.")
        now = self.clock()
        tok = Token(base64.b32encode(secrets.token_bytes(16)).decode().rstrip("="),
                    body["username"], self.token_timeout, now, now + self.token_timeout)
        self.tokens[tok.token] = tok
        self.logins += 1
        return {"username": tok.user, "loginReference": {
                    "link": "https://localhost/mgmt/cm/system/authn/providers/tmos/1f44a60e-"
                            "11a7-3c51-a49f-82983026b41b/login"},
                "loginProviderName": body.get("loginProviderName", "tmos"),
                "token": tok.render(), "generation": 0, "lastUpdateMicros": 0}

    def _live(self, token: str) -> Token | None:
        tok = self.tokens.get(token)
        if tok is not None and self.clock() >= tok.expires:
            del self.tokens[token]
            tok = None
        return tok

    def authenticate(self, headers: Any, uri: str, sender: str) -> str:
        """The user name, or an ``IcrError`` 401 as restjavad words it."""
        token = headers.get("X-F5-Auth-Token")
        if token:
            tok = self._live(token)
            if tok is None:
                raise unauthorized("X-F5-Auth-Token does not exist.")
            return tok.user
        basic = headers.get("Authorization", "")
        if basic.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(basic[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            if user in self.users and self.users[user] == password:
                return user
            raise unauthorized("Authentication failed.")
        raise unauthorized(f"Authorization failed: no user authentication header or token "
                           f"detected. Uri:{uri} Referrer:{sender} Sender:{sender}")

    def token_resource(self, method: str, token: str, body: Any) -> tuple[int, Any]:
        tok = self._live(token)
        if tok is None:
            raise IcrError(404, f"Object not found - {token}", framework=True)
        if method == "GET":
            return 200, tok.render()
        if method == "DELETE":
            del self.tokens[token]
            return 200, tok.render()
        if method == "PATCH":
            timeout = body.get("timeout") if isinstance(body, dict) else None
            if isinstance(timeout, bool) or not isinstance(timeout, int) or \
                    not 0 < timeout <= MAX_TIMEOUT:
                raise IcrError(400, f"invalid timeout value {timeout!r}: must be between 1 "
                                    f"and {MAX_TIMEOUT}", framework=True)
            now = self.clock()
            tok.timeout, tok.last_update = timeout, now
            tok.expires = now + timeout
            tok.generation += 1
            return 200, tok.render()
        raise IcrError(400, f"Method {method} is not supported on this URI.", framework=True)

    def expire_all(self) -> int:
        count = len(self.tokens)
        self.tokens.clear()
        return count
