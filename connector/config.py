"""Configuration: a TOML file read with tomllib, every key with a default, secrets from the environment.

A key ending in `_env` names the environment variable that holds a secret; the secret itself
never sits in the file, in a log or in an error message.
"""
from __future__ import annotations

import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.errors import ConfigError

log = logging.getLogger(__name__)
DEFAULT_CONFIG_FILE = "orderbridge.toml"
PLATFORMS = ("shopify", "woocommerce", "csv")

_SHOP_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")     # it is part of webhook URLs
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, key: str = "duration") -> float:
    """'500ms', '10s', '15m', '2h', '14d' (or a plain number of seconds) → seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ConfigError(f"{key}: {value!r} is not a duration (use 500ms, 10s, 15m, 2h or 14d)")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def secret(env_name: str | None) -> str | None:
    """The secret held in the environment variable `env_name` (None when unset or empty)."""
    if not env_name:
        return None
    return os.environ.get(env_name) or None


@dataclass(frozen=True)
class TargetConfig:
    url: str = "http://127.0.0.1:8080/api/v1"
    api_key_env: str = "ORDERBRIDGE_API_KEY"
    batch_size: int = 1000
    timeout: float = 60.0

    @property
    def api_key(self) -> str | None:
        return secret(self.api_key_env)


@dataclass(frozen=True)
class DaemonConfig:
    flush_every: float = 10.0
    poll_every: float = 900.0
    lease: float = 60.0
    # Seconds to wait before attempt n+1 of an order version (the last value repeats).
    retry_schedule: tuple[float, ...] = (30, 60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400)
    max_attempts: int = 30


@dataclass(frozen=True)
class ShopConfig:
    name: str
    platform: str
    order_id_prefix: str = ""
    webhook_secret_env: str | None = None
    status_map: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)   # platform-specific keys, as written

    @property
    def webhook_secret(self) -> str | None:
        return secret(self.webhook_secret_env)

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    def secret_of(self, key: str) -> str | None:
        """The secret named by `<key>_env` in this shop's section."""
        return secret(self.options.get(f"{key}_env"))


@dataclass(frozen=True)
class BackendConfig:
    database: str = "sqlite:///var/backend.db"
    api_keys_env: str = "ORDERBRIDGE_API_KEY"
    max_body: int = 32 * 1024 * 1024
    rate_limit: float = 200.0            # requests per second per API key; 0 turns it off
    organisation_name: str = "orderbridge"
    user_email: str = "admin@localhost"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def api_keys(self) -> list[str]:
        raw = secret(self.api_keys_env) or ""
        return [k.strip() for k in raw.split(",") if k.strip()]


@dataclass(frozen=True)
class Config:
    database: str = "sqlite:///var/connector.db"
    target: TargetConfig = TargetConfig()
    daemon: DaemonConfig = DaemonConfig()
    backend: BackendConfig = BackendConfig()
    shops: tuple[ShopConfig, ...] = ()
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    unknown_keys: tuple[str, ...] = ()     # keys no part reads (typos, most likely): logged, shown by `check`

    def shop(self, name: str) -> ShopConfig:
        for s in self.shops:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.shops) or "none configured"
        if not _SHOP_NAME.match(name):
            raise ConfigError(f"no shop named {name!r} in the config (shops: {known}); a shop name has letters, "
                              "digits, _ . - only")
        # A legacy store that started with `up` on defaults has no config file yet: say what to write, and where.
        where = self.path or f"./{DEFAULT_CONFIG_FILE} (read when present)"
        raise ConfigError(f"no shop named {name!r} in the config (shops: {known}); add it to {where}:\n"
                          f'  [[shops]]\n  name = "{name}"\n  platform = "csv"    '
                          "# or shopify / woocommerce, with the keys config.example.toml shows")

    def find_shop(self, name: str) -> ShopConfig | None:
        return next((s for s in self.shops if s.name == name), None)


def _section(raw: dict, name: str) -> dict:
    sec = raw.get(name, {})
    if not isinstance(sec, dict):
        raise ConfigError(f"[{name}] must be a table")
    return sec


def _known(sec: dict, cls, name: str, durations: tuple[str, ...] = ()) -> dict:
    names = {f for f in cls.__dataclass_fields__ if f != "options"}
    out = {}
    for k, v in sec.items():
        if k in durations:
            out[k] = parse_duration(v, f"[{name}] {k}")
        elif k in names:
            out[k] = v
    return out


def _shop(entry: dict, i: int) -> ShopConfig:
    name, platform = entry.get("name"), entry.get("platform")
    if not name or not isinstance(name, str) or not _SHOP_NAME.match(name):
        raise ConfigError(f"[[shops]] #{i + 1}: name is required (letters, digits, _ . -)")
    if platform not in PLATFORMS:
        raise ConfigError(f"[[shops]] {name}: platform must be one of {', '.join(PLATFORMS)}; got {platform!r}")
    status_map = entry.get("status_map", {})
    if not isinstance(status_map, dict) or not all(isinstance(v, str) for v in status_map.values()):
        raise ConfigError(f"[[shops]] {name}: status_map must be a table of status names (\"paid\" = \"IN_PROGRESS\")")
    _check_types(f"[[shops]] {name}", entry, {"order_id_prefix": (str, "a string"), "webhook_secret_env": (str, "a string")})
    env_keys = {k: (str, "the name of an environment variable") for k in entry if k.endswith("_env")}
    _check_types(f"[[shops]] {name}", entry, env_keys)
    options = {k: v for k, v in entry.items() if k not in ("name", "platform", "order_id_prefix", "webhook_secret_env", "status_map")}
    return ShopConfig(name=name, platform=platform, order_id_prefix=str(entry.get("order_id_prefix", "")),
                      webhook_secret_env=entry.get("webhook_secret_env"), status_map=dict(status_map), options=options)


_DATABASE_URL = re.compile(r"^(sqlite|postgres|postgresql)(\+\w+)?://")


def _check_types(where: str, values: dict, kinds: dict[str, tuple[type, str]]) -> None:
    """A key of the wrong type is named here, not met later as a stack trace."""
    for key, (kind, expected) in kinds.items():
        if key in values:
            v = values[key]
            if isinstance(v, bool) and kind is not bool or not isinstance(v, kind):
                raise ConfigError(f"{where} {key}: expected {expected}; got {v!r}")


def _check_database(where: str, url: Any) -> None:
    if not isinstance(url, str) or not _DATABASE_URL.match(url):
        raise ConfigError(f"{where} database: expected a sqlite:///PATH or postgresql+psycopg://... URL; got {url!r}")


def _validate(target: TargetConfig, daemon: DaemonConfig, backend: BackendConfig, database: Any) -> None:
    text, whole, number = (str, "a string"), (int, "a whole number"), ((int, float), "a number")
    _check_types("[target]", vars(target), {"url": text, "api_key_env": text, "batch_size": whole})
    if not re.match(r"^https?://[^/\s]+", target.url):
        raise ConfigError(f"[target] url: expected an http:// or https:// URL; got {target.url!r}")
    if not 1 <= target.batch_size <= 1000:
        raise ConfigError("[target] batch_size must be between 1 and 1000")
    if not target.timeout > 0:
        raise ConfigError(f"[target] timeout: expected a duration above zero such as \"60s\"; got {target.timeout:g} s")
    _check_types("[daemon]", vars(daemon), {"max_attempts": whole})
    if daemon.max_attempts < 1:
        raise ConfigError(f"[daemon] max_attempts: expected at least 1; got {daemon.max_attempts}")
    for key in ("flush_every", "poll_every", "lease"):
        if not getattr(daemon, key) > 0:
            raise ConfigError(f"[daemon] {key}: expected a duration above zero such as \"60s\"; "
                              f"got {getattr(daemon, key):g} s")
    _check_types("[backend]", vars(backend), {"api_keys_env": text, "max_body": whole, "rate_limit": number,
                                              "organisation_name": text, "user_email": text})
    if backend.max_body < 1 or backend.rate_limit < 0:
        raise ConfigError("[backend] max_body must be positive and rate_limit 0 (off) or more")
    _check_database("[connector]", database)
    _check_database("[backend]", backend.database)


# Sections whose keys are all known here; [backend] and [[shops]] also hold keys their parts read.
_SECTION_KEYS = {
    "connector": {"database"},
    "target": set(TargetConfig.__dataclass_fields__),
    "daemon": set(DaemonConfig.__dataclass_fields__),
    "receiver": {"max_body", "spool_dir"},
}
_TOP_LEVEL = set(_SECTION_KEYS) | {"backend", "shops"}
# What the backend and the shops' adapters read besides their dataclass fields (config.example.toml
# documents each; tests/unit/test_config_keys.py holds these lists to it and to the code).
BACKEND_OPTION_KEYS = frozenset({
    "ui_password_env", "ui_secret_key_env", "ui_session_hours", "report_currency", "revenue_window_days",
    "smtp_host", "smtp_port", "smtp_tls", "smtp_user_env", "smtp_password_env", "mail_from",
    "auth_fail_limit", "auth_fail_window", "auth_fail_addresses", "trusted_proxies"})
SHOP_KEYS = frozenset({
    "name", "platform", "order_id_prefix", "webhook_secret_env", "status_map",
    # Shopify
    "domain", "access_token_env", "api_version", "api_url", "currency", "item_id", "store_id", "poll_lookback",
    "poll_overlap", "poll_checkouts", "line_items_per_order", "enrich_products",
    # WooCommerce
    "url", "consumer_key_env", "consumer_secret_env", "query_string_auth", "rest_route", "abandoned_carts",
    "product_details", "per_page", "poll_since", "retry_attempts", "retry_wait_max",
    # CSV exports
    "preset", "mapping", "timezone"})


def unknown_keys(raw: dict) -> tuple[str, ...]:
    """Keys that nothing reads: `[daemon] flush_evry` or a shop's `webhook_secret` (for `webhook_secret_env`)
    would otherwise be ignored without a word."""
    out = [f"[{k}]" for k in raw if k not in _TOP_LEVEL]
    for name, known in _SECTION_KEYS.items():
        sec = raw.get(name)
        if isinstance(sec, dict):
            out += [f"[{name}] {k}" for k in sec if k not in known]
    backend = raw.get("backend")
    if isinstance(backend, dict):
        known = set(BackendConfig.__dataclass_fields__) - {"options"} | BACKEND_OPTION_KEYS
        out += [f"[backend] {k}" for k in backend if k not in known]
    shops = raw.get("shops")
    for i, shop in enumerate(shops if isinstance(shops, list) else ()):
        if isinstance(shop, dict):
            out += [f"[[shops]] {shop.get('name') or f'#{i + 1}'} {k}" for k in shop if k not in SHOP_KEYS]
    return tuple(out)


def from_dict(raw: dict, path: Path | None = None) -> Config:
    """Build a Config from parsed TOML (also used by tests)."""
    conn = _section(raw, "connector")
    target = TargetConfig(**_known(_section(raw, "target"), TargetConfig, "target", ("timeout",)))
    dsec = _section(raw, "daemon")
    dkw = _known(dsec, DaemonConfig, "daemon", ("flush_every", "poll_every", "lease"))
    if "retry_schedule" in dkw:
        if not isinstance(dkw["retry_schedule"], list) or not dkw["retry_schedule"]:
            raise ConfigError(f"[daemon] retry_schedule: expected a list of durations such as [\"30s\", \"5m\", \"1h\"]; "
                              f"got {dkw['retry_schedule']!r}")
        dkw["retry_schedule"] = tuple(parse_duration(v, "[daemon] retry_schedule") for v in dkw["retry_schedule"])
    bsec = _section(raw, "backend")
    bkw = _known(bsec, BackendConfig, "backend")
    bkw["options"] = {k: v for k, v in bsec.items() if k not in bkw}
    shops = raw.get("shops", [])
    if not isinstance(shops, list):
        raise ConfigError("shops must be written as [[shops]] tables")
    parsed = tuple(_shop(s, i) for i, s in enumerate(shops))
    names = [s.name for s in parsed]
    if len(set(names)) != len(names):
        raise ConfigError("[[shops]]: two shops share a name")
    database, daemon, backend = conn.get("database", Config.database), DaemonConfig(**dkw), BackendConfig(**bkw)
    _validate(target, daemon, backend, database)
    _check_types("[receiver]", _section(raw, "receiver"), {"max_body": (int, "a whole number of bytes"),
                                                           "spool_dir": (str, "a folder path, or \"\" for none")})
    if _section(raw, "receiver").get("max_body", 1) < 1:
        raise ConfigError("[receiver] max_body: expected a number of bytes above zero; "
                          f"got {_section(raw, 'receiver')['max_body']}")
    unknown = unknown_keys(raw)
    if unknown:
        log.warning("config%s: ignoring unknown keys (typos?): %s", f" {path}" if path else "", ", ".join(unknown))
    return Config(database=database, target=target, daemon=daemon, backend=backend, shops=parsed, path=path, raw=raw,
                  unknown_keys=unknown)


def load_config(path: str | Path | None = None) -> Config:
    """Read the config file given, else ./orderbridge.toml if present, else the built-in defaults."""
    if path is None:
        if not Path(DEFAULT_CONFIG_FILE).exists():
            return from_dict({})
        path = DEFAULT_CONFIG_FILE
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {p} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"config file {p} cannot be read: {e.strerror}") from None
    return from_dict(raw, p)
