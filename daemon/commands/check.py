"""`orderbridge check`: config, connector store, target, credentials and shops; one line each."""
from __future__ import annotations

HELP = "check the config, the connector store, the target and its credentials; says what is wrong, one line each"


def add_arguments(p) -> None:
    pass


def run(args, config) -> int:
    lines = [("config", True, f"ok ({config.path or 'built-in defaults'})"), store(config), *target(config), *shops(config)]
    for name, ok, text in lines:
        print(f"{'ok ' if ok else 'BAD'} {name}: {text}")
    return 0 if all(ok for _, ok, _ in lines) else 1


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
    if not t.api_key:
        return [("target", True, t.url), ("credentials", False, f"no API key: set the environment variable {t.api_key_env}")]
    client = AddOrdersClient(t.url, t.api_key, timeout=min(t.timeout, 15), retry=RetryPolicy(attempts=1))
    try:
        info = client.account_info()
    except CredentialsRefused as e:
        reachable = e.status in (401, 403)
        return [("target", reachable, t.url if reachable else str(e)),
                ("credentials", False, f"{e} (key from {t.api_key_env})" if reachable else "not checked")]
    except OrderbridgeError as e:
        return [("target", False, f"cannot reach {t.url}: {e}"), ("credentials", False, "not checked")]
    who = ", ".join(str(info[k]) for k in ("organisationName", "userEmail") if info.get(k)) or "accepted"
    return [("target", True, f"reachable ({t.url})"), ("credentials", True, who)]


def shops(config):
    out = []
    for shop in config.shops:
        problems = []
        if shop.platform != "csv" and shop.webhook_secret_env and not shop.webhook_secret:
            problems.append(f"webhook secret missing (set {shop.webhook_secret_env})")
        missing = [v for k, v in shop.options.items() if k.endswith("_env") and isinstance(v, str) and not shop.secret_of(k[:-4])]
        problems += [f"{v} is not set" for v in missing]
        out.append((f"shop {shop.name} ({shop.platform})", not problems, "; ".join(problems) or "secrets set"))
    return out
