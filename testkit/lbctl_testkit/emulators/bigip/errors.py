"""Error values of the BIG-IP emulator, in the two JSON shapes a device uses.

mcpd/iControl errors: ``{"code", "message", "errorStack", "apiError"}``.
restjavad (framework) errors: ``{"code", "message", "referer", "restOperationId",
"kind": ":resterrorresponse"}`` (docs/upstream.md#big-ip-auth).  Texts follow
published device captures; those not confirmed on a device are marked [unverified].
"""

from __future__ import annotations

import itertools
import json
from typing import Any

_OPERATION_IDS = itertools.count(1000)

API_MCP = 3          # mcpd validation errors
API_REST = 1         # framework-level request errors
API_PROPERTY = 26214401  # property-level (tmsh parser) errors
API_TRANSACTION = 2  # "transaction failed:..."


class IcrError(Exception):
    """A non-2xx answer; raised anywhere below the HTTP layer, rendered by it."""

    def __init__(self, status: int, message: str, api_error: int = API_MCP, *,
                 framework: bool = False, error_stack: list[str] | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.api_error = api_error
        self.framework = framework
        self.error_stack = list(error_stack or [])
        self._body = body

    def body(self, referer: str = "127.0.0.1") -> dict[str, Any]:
        if self._body is not None:
            return self._body
        if self.framework:
            return {"code": self.status, "message": self.message, "referer": referer,
                    "restOperationId": next(_OPERATION_IDS), "kind": ":resterrorresponse"}
        return {"code": self.status, "message": self.message,
                "errorStack": self.error_stack, "apiError": self.api_error}


def not_found(label: str, path: str) -> IcrError:
    return IcrError(404, f"01020036:3: The requested {label} ({path}) was not found.")


def duplicate(label: str, path: str, partition: str) -> IcrError:
    return IcrError(409, f"01020066:3: The requested {label} ({path}) already exists "
                         f"in partition {partition}.")


def bad_value(key: str, value: Any) -> IcrError:
    return IcrError(400, f"invalid property value {json.dumps(key)}:{json.dumps(value)}",
                    API_PROPERTY)


def unknown_property(key: str) -> IcrError:
    # [unverified] text; the code and apiError are the tmsh-parser ones.
    return IcrError(400, f"{json.dumps(key)} unknown property", API_PROPERTY)


def create_only(key: str) -> IcrError:
    return IcrError(400, f'{json.dumps(key)} may not be specified in the context of the '
                         f'"modify" command. {json.dumps(key)} may be specified using the '
                         f"following commands: create, list, show", API_PROPERTY)


def folder_missing(folder: str) -> IcrError:
    return IcrError(400, f"The requested folder ({folder}) was not found.", API_PROPERTY)


def no_properties() -> IcrError:
    return IcrError(400, "one or more properties must be specified", API_PROPERTY)


def no_identifier() -> IcrError:
    return IcrError(400, "one or more configuration identifiers must be provided",
                    API_PROPERTY)


def invalid_json() -> IcrError:
    return IcrError(400, "Found invalid JSON body in the request.", API_REST)


def uri_not_registered(path_after_mgmt: str) -> IcrError:
    return IcrError(404, f"Public URI path not registered: {path_after_mgmt}",
                    framework=True)


def method_not_allowed(method: str, path: str) -> IcrError:
    # [unverified] text: restjavad answers unsupported verbs with a framework 400.
    return IcrError(400, f"Method {method} is not supported on {path}", framework=True)
