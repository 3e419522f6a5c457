"""The lbctl error tree.

Every error lbctl raises on purpose is an ``LbctlError``: it carries a one-line
message that names what failed and where, and the exit code the CLI returns.
``Temporary`` errors may succeed when retried (the controller backs off);
everything else is permanent.  Nothing below ``cli.py`` exits the process.
"""

from __future__ import annotations


class LbctlError(Exception):
    """Base class: a clear, one-line, user-facing failure."""

    exit_code = 1

    def __str__(self) -> str:
        # One line, whatever the cause carried (target output can be multi-line).
        return " ".join(super().__str__().split())


class ConfigError(LbctlError):
    """Bad input: inventory, lbctl.yml, template, or discovery data."""


class ValidationError(LbctlError):
    """The target's own check rejected the candidate configuration."""


class CommandError(LbctlError):
    """An external command failed to run, timed out or exited non-zero."""


class ApplyError(LbctlError):
    """Putting the candidate in place failed (the live config is unchanged)."""


class ReloadError(LbctlError):
    """The target did not take the new configuration."""


class VerifyError(LbctlError):
    """The target runs the new configuration but it does not serve as expected."""


class RollbackError(LbctlError):
    """Restoring the previous configuration failed: the loudest failure there is."""

    exit_code = 3


class LockedError(LbctlError):
    """Another lbctl holds the apply lock for this target."""


class Temporary(LbctlError):
    """A failure that may go away by itself (unreachable API, 5xx); retry after ``delay``."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class DiscoveryError(Temporary):
    """The discovery source could not be read; keep serving the last good config."""
