"""`orderbridge receiver`: the webhook receiver alone (a WSGI app). Several may run side by side: on one
machine with SQLite (each process commits its own deliveries; the delivery id keeps a platform's retry
from being stored twice), on several with PostgreSQL."""
from __future__ import annotations

HELP = "run the webhook receiver alone (POST /webhooks/<shopify|woocommerce>/<shop>, GET /healthz)"


def add_arguments(p) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8081, help="port to listen on (default 8081; 0 picks a free one)")
    p.add_argument("--threads", type=int, default=8, help="request threads (default 8)")


def run(args, config) -> int:
    from daemon.receiver import create_receiver_app

    app = create_receiver_app(config)
    ready = lambda h, p: print(f"orderbridge receiver: webhooks on http://{h}:{p}/webhooks/<platform>/<shop>", flush=True)
    try:
        from daemon.serve import serve
    except ImportError:   # daemon.serve belongs to the backend work; waitress alone still serves
        from waitress import serve as waitress_serve
        ready(args.host, args.port)
        waitress_serve(app, host=args.host, port=args.port, threads=args.threads)
    else:
        try:
            serve(app, args.host, args.port, args.threads, on_ready=ready)
        except OSError as e:
            from daemon.commands.up import listen_error
            err = listen_error(e, args.host, args.port)
            if err is None:
                raise
            raise err from None
    finally:
        app.config["OB_ENGINE"].dispose()
    return 0
