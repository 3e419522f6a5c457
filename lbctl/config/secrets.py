"""The one reader of a secret named in lbctl.yml: ``<key>_env`` (an environment
variable) or ``<key>_file`` (a file, relative to lbctl.yml), never both.

Used by the Consul ACL token (``token``) and the BIG-IP password (``password``).
Settings keep only where the secret is; ``read`` fetches it when it is needed,
remembers it for masking (lbctl.redact) and never logs or shows it: an error names
the key and the variable or file, not the value.  Documented in
docs/configuration.md ("Secrets").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from lbctl import redact
from lbctl.config import values as val
from lbctl.errors import ConfigError


def where(data: Mapping, key: str, path: str, base: Path, required: bool) -> tuple[str | None, Path | None]:
    """The variable name and the file of secret ``key`` in the section ``data`` at ``path``.

    :raises ConfigError: both are given, or neither when ``required``, or a bad name.
    """
    env_key, file_key = f"{key}_env", f"{key}_file"
    given = (data.get(env_key) is not None) + (data.get(file_key) is not None)
    if given == 2 or (required and not given):
        need = "needs exactly one" if required else "takes at most one"
        raise val.fail(path, f"{need} of {env_key} (an environment variable) or {file_key}")
    return val.optional(data, env_key, path, val.env_name, None), val.file_in(base, data, file_key, path)


def read(env: str | None, file: Path | None, path: str, key: str) -> str:
    """The secret in the variable ``env`` or the file ``file`` (its trailing line end
    removed), remembered for masking.  ``path`` and ``key`` (``token``, ``password``)
    name the setting in errors, which never show the value.

    :raises ConfigError: the variable is not set, the file cannot be read or is empty.
    """
    if file is not None:
        try:
            value = file.read_text().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}.{key}_file: cannot read {file}: "
                              f"{getattr(exc, 'strerror', None) or 'not UTF-8 text'}") from None
        if not value:
            raise ConfigError(f"{path}.{key}_file: {file} is empty")
    else:
        value = os.environ.get(env or "", "")
        if not value:
            raise ConfigError(f"{path}.{key}_env: the environment variable {env} is not set")
    redact.remember(value)
    return value
