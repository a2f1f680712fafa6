"""The keys the config warns about as unknown: held to config.example.toml (which documents every key)
and to the code that reads them, so a typo is named and a real key never is."""
from __future__ import annotations

import re
from pathlib import Path

from connector.config import BACKEND_OPTION_KEYS, SHOP_KEYS, BackendConfig, from_dict

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "config.example.toml").read_text()


def documented(section_start: str, section_end: str) -> set[str]:
    part = EXAMPLE.split(section_start, 1)[1].split(section_end, 1)[0]
    return set(re.findall(r"^#? ?([a-z_]+) = ", part, re.M))


def read_in_code(pattern: str, folders: tuple[str, ...]) -> set[str]:
    found = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(re.findall(pattern, path.read_text(encoding="utf-8")))
    return found


def test_every_documented_key_is_known():
    backend_known = set(BackendConfig.__dataclass_fields__) | BACKEND_OPTION_KEYS
    assert documented("\n[backend]\n", "\n[receiver]\n") <= backend_known
    shops = documented("# [[shops]]\n", "# [shops.status_map]")
    assert shops and shops <= SHOP_KEYS


def test_every_key_the_code_reads_is_known():
    shop_reads = read_in_code(r"\bshop\.get\(\s*['\"]([a-z_]+)['\"]", ("adapters", "daemon", "connector"))
    secret_reads = {k + "_env" for k in read_in_code(r"\bshop\.secret_of\(\s*['\"]([a-z_]+)['\"]",
                                                     ("adapters", "daemon", "connector"))}
    assert shop_reads and secret_reads and shop_reads | secret_reads <= SHOP_KEYS
    backend_reads = read_in_code(r"(?:\boptions\([a-z_]+\)|\bo|\bopts)\.get\(\s*['\"]([a-z_]+)['\"]", ("backend",))
    assert backend_reads and backend_reads <= BACKEND_OPTION_KEYS


def test_typos_are_named_and_values_never_shown():
    config = from_dict({"backend": {"smtp_hots": "mail.example"},
                        "shops": [{"name": "main", "platform": "shopify", "webhook_secret": "shpss_123"},
                                  {"name": "woo", "platform": "woocommerce", "consumer_key_env": "CK"}]})
    assert config.unknown_keys == ("[backend] smtp_hots", "[[shops]] main webhook_secret")
    assert "shpss_123" not in repr(config.unknown_keys)
