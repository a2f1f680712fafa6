"""`orderbridge check`: config, connector store, target, credentials and shops; one line each."""
from __future__ import annotations

HELP = "check the config, the connector store, the target and its credentials; says what is wrong, one line each"


def add_arguments(p) -> None:
    pass


def run(args, config) -> int:
    lines = [config_line(config), store(config), *target(config), *shops(config)]
    for name, ok, text in lines:
        print(f"{'ok ' if ok else 'BAD'} {name}: {text}")
    return 0 if all(ok for _, ok, _ in lines) else 1


def config_line(config):
    where = config.path or "built-in defaults"
    if config.unknown_keys:
        return ("config", False, f"{where}: unknown keys, ignored (typos?): {', '.join(config.unknown_keys)}")
    return ("config", True, f"ok ({where})")


def store(config):
    from sqlalchemy import text

    from connector.store import make_engine
    engine = make_engine(config.database)
    try:
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
        return ("connector store", True, f"reachable ({engine.url.render_as_string(hide_password=True)})")
    except Exception as e:   # noqa: BLE001 - reported, not raised
        return ("connector store", False, f"cannot open {engine.url.render_as_string(hide_password=True)}: {type(e).__name__}")
    finally:
        engine.dispose()


def target(config):
    from connector.client import AddOrdersClient, CredentialsRefused, RetryPolicy
    from connector.errors import OrderbridgeError
    t = config.target
    from daemon.jobs import key_hint
    no_key = f"no API key: set the environment variable {t.api_key_env}" + key_hint(config)
    # Without a key the request still goes out: a 401 proves the URL, a refused connection disproves it.
    client = AddOrdersClient(t.url, t.api_key, timeout=min(t.timeout, 15), retry=RetryPolicy(attempts=1))
    try:
        info = client.account_info()
    except CredentialsRefused as e:
        reachable = e.status in (401, 403)
        if not reachable:
            return [("target", False, str(e)), ("credentials", False, no_key if not t.api_key else "not checked")]
        return [("target", True, f"reachable ({t.url})"),
                ("credentials", False, no_key if not t.api_key else f"{e} (key from {t.api_key_env})")]
    except OrderbridgeError as e:
        why = f"({type(e.__cause__).__name__})" if e.__cause__ is not None else f": {e}"
        return [("target", False, f"cannot reach {t.url} {why}{local_hint(t.url)}"),
                ("credentials", False, no_key if not t.api_key else "not checked")]
    if not t.api_key:
        return [("target", True, f"reachable ({t.url})"), ("credentials", False, no_key)]
    who = ", ".join(str(info[k]) for k in ("organisationName", "userEmail") if info.get(k)) or "accepted"
    return [("target", True, f"reachable ({t.url})"), ("credentials", True, who)]


def local_hint(url: str) -> str:
    """The default target is the backend of `orderbridge up` on this machine: not reaching it usually means
    that it is not running."""
    from urllib.parse import urlsplit
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        return ""
    return ("; is `orderbridge up` (or `orderbridge backend`) running there? Started with another --port, "
            "set [target] url to match")


def shops(config):
    return [shop_line(shop) for shop in config.shops]


def shop_line(shop) -> tuple[str, bool, str]:
    """Secrets, status_map, and for a shop with API credentials one real request to its API."""
    from connector.errors import OrderbridgeError
    problems, notes = [], []
    if shop.platform != "csv" and shop.webhook_secret_env and not shop.webhook_secret:
        problems.append(f"webhook secret missing (set {shop.webhook_secret_env})")
    missing = [v for k, v in shop.options.items() if k.endswith("_env") and isinstance(v, str) and not shop.secret_of(k[:-4])]
    problems += [f"{v} is not set" for v in missing]
    if shop.platform in ("shopify", "woocommerce"):
        try:
            _translation_options(shop)
        except OrderbridgeError as e:
            problems.append(str(e))
        api = _api_client_module(shop.platform)
        if not shop.webhook_secret_env:
            notes.append("no webhook_secret_env: its webhooks are refused (401)")
        if api.has_credentials(shop):
            try:
                notes.append(_probe(shop))
            except Exception as e:   # noqa: BLE001 - reported in one line, never a stack trace
                problems.append(f"API: {e}" if isinstance(e, OrderbridgeError) else f"API: {type(e).__name__}")
        elif not missing:
            notes.append("no API credentials: not polled, so a missed webhook is not caught up")
            if not shop.webhook_secret_env:
                problems.append("neither a webhook secret nor API credentials: no order can come in")
    text = "; ".join(problems + notes) or "secrets set"
    return (f"shop {shop.name} ({shop.platform})", not problems, text)


def _api_client_module(platform: str):
    if platform == "shopify":
        from adapters.shopify import client
    else:
        from adapters.woocommerce import client
    return client


def _translation_options(shop) -> None:
    """Build what translation builds from the shop's config, so a bad status_map shows here."""
    if shop.platform == "shopify":
        from adapters.shopify.translate import status_rules
        status_rules(shop.status_map, shop.name)
    else:
        from adapters.woocommerce.translate import options_of
        options_of(shop)


def _probe(shop) -> str:
    if shop.platform == "woocommerce":
        from adapters.woocommerce.client import check
        return check(shop)
    from adapters.shopify import graphql
    from adapters.shopify.client import ShopifyClient
    data = ShopifyClient.for_shop(shop, max_attempts=1, timeout=15).query(graphql.SCOPES_QUERY, name="Scopes", cost=2)
    scopes = {s.get("handle") for s in ((data.get("currentAppInstallation") or {}).get("accessScopes") or ())}
    if "read_all_orders" not in scopes:
        return "Admin API reachable; the token lacks read_all_orders, so only the last 60 days are readable"
    return "Admin API reachable"
