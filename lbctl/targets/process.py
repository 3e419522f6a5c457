"""The one place lbctl runs external commands.

``run`` never raises for a non-zero exit (callers decide what an exit code
means); it raises ``CommandError`` only when the command could not run at all
or ran out of time, after killing its whole process group.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from typing import Mapping, Sequence

from lbctl.errors import CommandError

# Where Debian installs haproxy and nginx: not on a normal user's PATH.
SBIN = "/usr/local/sbin:/usr/sbin:/sbin"
# How long to wait for the pipes to drain after the process group was killed
# (a daemonized grandchild in another session may still hold them open).
_DRAIN_SECONDS = 1.0


@dataclass(frozen=True)
class Result:
    """What a finished command returned; output is text."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        """stderr then stdout, stripped: what to show a user when the command failed."""
        return "\n".join(s.strip() for s in (self.stderr, self.stdout) if s.strip())


def locate(binary: str) -> str:
    """A bare command name (``haproxy``) from PATH, else from the sbin directories."""
    if "/" in binary or shutil.which(binary):
        return binary
    return shutil.which(binary, path=SBIN) or binary


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Result:
    """Run ``argv`` (no shell) in its own process group and wait at most ``timeout`` seconds.

    ``env`` entries are added to the current environment.

    :raises CommandError: the binary is missing or not executable, or the timeout
        expired (the process group is killed first).
    """
    argv = (locate(str(argv[0])), *(str(a) for a in argv[1:]))
    shown = shlex.join(argv)
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise CommandError(f"{argv[0]}: command not found (running: {shown})") from None
    except PermissionError:
        raise CommandError(f"{argv[0]}: permission denied (running: {shown})") from None
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise CommandError(f"timed out after {timeout:g}s: {shown}") from None
    except BaseException:  # KeyboardInterrupt and friends: leave nothing behind
        _kill_group(proc)
        raise
    return Result(argv, proc.returncode, stdout, stderr)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the process group started for ``proc``, reap it, drop its output."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.communicate(timeout=_DRAIN_SECONDS)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
