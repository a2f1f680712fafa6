"""`orderbridge up`: everything in one process on embedded defaults, on one port."""
from __future__ import annotations

from typing import Callable

HELP = "run everything in one process (backend API and UI, webhook receiver, daemon jobs) on one port"


def add_arguments(p) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080; 0 picks a free one)")
    p.add_argument("--threads", type=int, default=8, help="request threads (default 8)")


def build_wsgi(config):
    """(backend Flask app, the WSGI app to serve). Each service that joins `up` mounts itself here."""
    from backend import create_app
    from backend.workflows import install_starters
    backend = create_app(config)
    install_starters(backend.extensions["orderbridge.engine"])   # only into an empty workflow table
    from daemon.status_ui import register_status_ui
    register_status_ui(backend, config)          # the connector status page, /ui/connector
    from daemon.receiver import create_receiver_app, dispatch_webhooks
    return backend, dispatch_webhooks(create_receiver_app(config), backend)   # /webhooks/... → receiver


def start_jobs(config, backend) -> list[Callable[[], None]]:
    """Start the in-process background work; returns the callables that stop it, in order."""
    from backend.worker import start_background, stop_background
    stop = start_background(backend)
    return [lambda: stop_background(backend, stop)]


def connector_config(config, host: str, port: int):
    """The config of the in-process connector: it pushes to the backend served here, on the port actually
    taken, unless the config names another target."""
    from dataclasses import replace
    if "url" in config.raw.get("target", {}):
        return config
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return replace(config, target=replace(config.target, url=f"http://{local}:{port}/api/v1"))


def start_daemon(config, host: str, port: int) -> Callable[[], None]:
    """The connector's jobs in-process (flush, inbox, leases, polls), pushing to the backend served here
    unless the config names another target; returns the function that stops them."""
    from daemon.jobs import Runtime
    from daemon.scheduler import start_background
    rt = Runtime.create(connector_config(config, host, port))
    stop = start_background(rt)
    return lambda: (stop(), rt.engine.dispose())


def _banner(host: str, port: int, key: str, source: str | None, shops=()) -> str:
    base = f"http://{host}:{port}"
    shown = f"{key}   (kept in var/api_key)" if source is None else f"from the environment variable {source}"
    # the URLs to paste into each configured shop's webhook settings (none configured: the pattern)
    hooks = [f"{base}/webhooks/{s.platform}/{s.name}" for s in shops if s.platform in ("shopify", "woocommerce")]
    hooks = hooks or [f"{base}/webhooks/<shopify|woocommerce>/<shop name>"]
    return "\n".join([
        f"orderbridge is up on {base}",
        f"  API (Yespo-compatible): {base}/api/v1   (Basic auth: any user name, the API key as password)",
        f"  UI:                     {base}/",
        *(f"  {'webhooks:' if i == 0 else '':24}{url}" for i, url in enumerate(hooks)),
        f"  API key:                {shown}",
    ])


def listen_error(e: OSError, host: str, port: int):
    """The address cannot be taken (in use, not ours, privileged): a sentence, not a stack trace."""
    import errno

    from connector.errors import ConfigError
    why = {errno.EADDRINUSE: "is already in use (another orderbridge?); pick another with --port",
           errno.EACCES: "needs privileges (ports below 1024); pick another with --port",
           errno.EADDRNOTAVAIL: "is not an address of this machine; check --host"}.get(e.errno)
    return ConfigError(f"cannot listen on {host}:{port}: it {why}") if why else None


def run(args, config) -> int:
    from backend.keys import ensure_api_key
    from daemon.commands.backend import tune_gc
    from daemon.serve import serve

    key, source = ensure_api_key(config)
    backend, wsgi = build_wsgi(config)
    tune_gc()
    stops = start_jobs(config, backend)
    try:
        def ready(h, p):
            stops.insert(0, start_daemon(config, h, p))   # the port is known only now; stopped first
            print(_banner(h, p, key, source, config.shops), flush=True)
        try:
            serve(wsgi, args.host, args.port, args.threads, on_ready=ready)
        except OSError as e:
            err = listen_error(e, args.host, args.port)
            if err is None:
                raise
            raise err from None
    finally:
        for stop in stops:
            stop()
        backend.extensions["orderbridge.engine"].dispose()
    return 0
