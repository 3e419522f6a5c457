"""An HTTPS emulator of an F5 BIG-IP (iControl REST + AS3) for lbctl's tests.

Built to the device's documented behaviour (docs/upstream.md#f5-big-ip) so that
f5-sdk 3.0.21 and plain requests cannot tell it from a device.  Test-only: nothing in ``lbctl`` proper imports it.
"""

from .errors import IcrError
from .server import BigIPEmulator, Request

__all__ = ["BigIPEmulator", "IcrError", "Request"]
