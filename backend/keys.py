"""The API key of `orderbridge up`: from the environment, else created once and kept in ./var/api_key."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from connector.errors import ConfigError

KEY_FILE = Path("var") / "api_key"


def read_or_create(path: Path = KEY_FILE) -> str:
    """The key stored in `path`, created (random, file mode 0600) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text(encoding="utf-8").strip()
        if not key:
            raise ConfigError(f"{path} is empty: delete it and `orderbridge up` creates a new key") from None
        return key
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    return key


def ensure_api_key(config, path: Path = KEY_FILE) -> tuple[str, str | None]:
    """(key, env var it came from or None when stored in `path`), exported for this process.

    The backend reads its keys from `[backend] api_keys_env`; the connector sends the key in
    `[target] api_key_env`. One key serves both: we set either variable when it is unset.
    """
    keys = config.backend.api_keys
    if keys:
        key, source = keys[0], config.backend.api_keys_env
    else:
        key, source = read_or_create(path), None
        os.environ[config.backend.api_keys_env] = key
    if not os.environ.get(config.target.api_key_env):
        os.environ[config.target.api_key_env] = key
    return key, source
