"""f5-sdk, loaded on first use, with the timeouts it lacks (used by icontrol.py only).

f5-sdk sets no timeouts: every request here has one (a transport adapter on the
REST session) and so does the login (a token login of our own).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import requests

from lbctl import redact
from lbctl.errors import ConfigError

LOGIN = "/mgmt/shared/authn/login"


@dataclass(frozen=True)
class Access:
    """How to reach one device.  ``password`` is called once per login; never logged."""

    host: str
    port: int
    username: str
    password: Callable[[], str]
    verify: bool | str = True
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"


@functools.lru_cache(maxsize=1)
def load() -> SimpleNamespace:
    """f5-sdk, and the two subclasses that give its login and session timeouts."""
    warnings.filterwarnings("ignore", message="distutils Version classes are deprecated",
                            category=DeprecationWarning)
    try:
        from f5.bigip import ManagementRoot
        from icontrol.authtoken import iControlRESTTokenAuth
        from icontrol.exceptions import iControlUnexpectedHTTPError
    except ImportError as exc:
        raise ConfigError(f"the bigip target needs f5-sdk, which is not installed ({exc}): "
                          "pip install 'lbctl[bigip]'") from None

    class TimeoutAdapter(requests.adapters.HTTPAdapter):
        def __init__(self, timeout: float) -> None:
            super().__init__()
            self.default_timeout = timeout

        def send(self, request, timeout=None, **kwargs):  # noqa: ANN001 - requests' signature
            return super().send(request, timeout=timeout or self.default_timeout, **kwargs)

    class TokenAuth(iControlRESTTokenAuth):
        """f5-sdk's token auth, logging in with a timeout (its own login has none)."""

        def __init__(self, username: str, password: str, verify: Any, timeout: float) -> None:
            super().__init__(username, password, verify=verify)
            self.timeout = timeout

        def get_new_token(self, netloc: str) -> None:
            resp = requests.post(f"https://{netloc}{LOGIN}", timeout=self.timeout, verify=self.verify,
                                 auth=requests.auth.HTTPBasicAuth(self.username, self.password),
                                 json={"username": self.username, "password": self.password,
                                       "loginProviderName": "tmos"})
            self.attempts += 1
            if not resp.ok:
                raise iControlUnexpectedHTTPError(f"{resp.status_code} login failed", response=resp)
            token = self._get_token_from_response(resp.json())
            redact.remember(self.token)  # a device may echo it in an error body
            created = self._get_last_update_micros(token)
            self.expiration = self._get_token_expiration_time(created, self._get_expiration_micros(token, created))

    class Root(ManagementRoot):
        def __init__(self, access: Access, password: str) -> None:
            self._lbctl_access = access
            host = f"[{access.host}]" if ":" in access.host else access.host
            super().__init__(host, access.username, password, port=access.port, token=True,
                             verify=access.verify, timeout=access.timeout)

        def _get_icr_session(self, *args: Any, **kwargs: Any) -> Any:
            icrs = super()._get_icr_session(*args, **kwargs)
            access = self._lbctl_access
            icrs.session.mount("https://", TimeoutAdapter(access.timeout))
            icrs.session.auth = TokenAuth(kwargs["username"], kwargs["password"], access.verify, access.timeout)
            return icrs

    return SimpleNamespace(Root=Root, HTTPError=iControlUnexpectedHTTPError)
