"""`orderbridge import-csv FILE --shop NAME`: stream a CSV export of orders into the outbox."""
from __future__ import annotations

import sys
from pathlib import Path

HELP = "import a CSV export of orders (Shopify, WooCommerce or a generic mapping) into the outbox"

EXIT_OK, EXIT_REJECTED = 0, 1


def add_arguments(parser) -> None:
    parser.add_argument("file", help="the CSV file")
    parser.add_argument("--shop", required=True, help="the shop (from the config) the orders belong to; its "
                        "order_id_prefix applies")
    parser.add_argument("--preset", choices=("shopify", "woocommerce", "generic"),
                        help="the file's format (default: the shop's `preset`, else its platform; "
                        "`generic` when --mapping is given)")
    parser.add_argument("--mapping", metavar="FILE", help="TOML mapping for the generic preset")
    parser.add_argument("--dry-run", action="store_true", help="check the file and show what would be sent; "
                        "the outbox is not touched (the rejected-rows report is still written)")
    parser.add_argument("--encoding", help="the file's encoding when it is not UTF-8, e.g. cp1252 (a BOM is "
                        "always honoured)")
    parser.add_argument("--delimiter", help="the cell separator: one character, or tab / semicolon (default ,)")
    parser.add_argument("--timezone", help="IANA time zone for dates written without an offset "
                        "(default: the shop's `timezone`, else UTC)")
    parser.add_argument("--workers", type=int, metavar="N", help="processes that read, build and validate ranges "
                        "of the file beside the one writing the outbox (default: one per CPU, at most 8; "
                        "0: all in one process)")


def choose_preset(args, shop) -> str:
    """--preset, else the shop's `preset`, else generic with a mapping, else the shop's platform."""
    from connector.errors import ConfigError
    preset = args.preset or shop.get("preset")
    if preset:
        return preset
    if args.mapping or shop.get("mapping"):
        return "generic"
    if shop.platform in ("shopify", "woocommerce"):
        return shop.platform
    raise ConfigError(f"shop {shop.name!r} has platform csv: say which format the file is in with "
                      "--preset shopify|woocommerce|generic (or set `preset` in the shop's config)")


def context_of(args, shop, preset: str):
    from adapters.csv import Context
    from adapters.csv.values import zone
    from connector.errors import ConfigError
    mapping = args.mapping or shop.get("mapping")
    if preset == "generic" and not mapping:
        raise ConfigError("the generic preset needs a mapping file: --mapping FILE (see README, CSV import)")
    tz = zone(args.timezone or shop.get("timezone"), "--timezone" if args.timezone else f"[[shops]] {shop.name} timezone")
    return Context(order_id_prefix=shop.order_id_prefix or "", status_map=dict(shop.status_map or {}), tz=tz,
                   mapping=Path(mapping) if mapping else None)


def run(args, config) -> int:
    from tqdm import tqdm

    from daemon.commands.backend import tune_gc

    from adapters.csv import import_file
    from adapters.csv.sinks import DryRunSink

    # Any platform is allowed: a Shopify or WooCommerce shop importing its own history must use its
    # own name and prefix, so the CSV versions and the API/webhook versions land on the same orders.
    shop = config.shop(args.shop)
    preset = choose_preset(args, shop)
    ctx = context_of(args, shop, preset)
    path = Path(args.file)
    encoding, delimiter = _dialect_of(args, ctx)
    sink = DryRunSink(sys.stdout) if args.dry_run else _outbox_sink(config, shop.name, path.name)
    tune_gc()       # what start-up built lives to the end; each order's objects die young
    try:
        with tqdm(file=sys.stderr, unit=" rows", unit_scale=True, mininterval=0.5, desc=path.name,
                  disable=None) as bar:
            label, summary = import_file(path, preset, ctx, sink, encoding=encoding, delimiter=delimiter,
                                         progress=bar.update, workers=_workers(args))
    finally:
        if not args.dry_run:
            sink.engine.dispose()
    _print_errors(summary)
    _print_summary(label, summary, sink, args.dry_run)
    return EXIT_REJECTED if summary.rejected_rows else EXIT_OK


def _workers(args) -> int | None:
    from connector.errors import InvalidInput
    if args.workers is not None and args.workers < 0:
        raise InvalidInput(f"--workers must be 0 or more; got {args.workers}")
    return args.workers


def _dialect_of(args, ctx) -> tuple[str | None, str | None]:
    """--encoding / --delimiter, else what the generic mapping file says."""
    if ctx.mapping is None or (args.encoding and args.delimiter):
        return args.encoding, args.delimiter
    from adapters.csv.presets.generic import load_mapping
    mapping = load_mapping(ctx.mapping)
    return args.encoding or mapping.get("encoding"), args.delimiter or mapping.get("delimiter")


def _outbox_sink(config, shop: str, file_name: str):
    from adapters.csv.sinks import OutboxSink
    from connector.store import init_db, make_engine
    engine = make_engine(config.database)
    init_db(engine)
    return OutboxSink(engine, shop, file_name)


def _print_errors(summary) -> None:
    for e in summary.errors:
        print(f"line {e.line}, {e.column}: {e.reason}", file=sys.stderr)
    more = summary.error_count - len(summary.errors)
    if more > 0:
        print(f"... and {more} more errors in {summary.rejected_file}", file=sys.stderr)


def _print_summary(label: str, s, sink, dry_run: bool) -> None:
    out = sys.stdout
    print(f"{label}: {s.rows} rows, {s.orders + s.rejected_orders} orders", file=out)
    if dry_run:
        print(f"  would enqueue: {s.orders} orders, before dropping those already enqueued unchanged "
              "(dry run: the outbox was not touched)", file=out)
    else:
        r = sink.result
        print(f"  enqueued:  {r.enqueued} orders", file=out)
        print(f"  unchanged: {r.unchanged} orders (already enqueued with the same content)", file=out)
        if r.stale:
            print(f"  stale:     {r.stale} orders (the outbox holds a newer version from the shop's API)", file=out)
    if s.blank.count:
        print(f"  skipped:   {s.blank.count} blank rows (no cell filled; the first at line {s.blank.first_line})", file=out)
    print(f"  rejected:  {s.rejected_rows} rows ({s.rejected_orders} orders)"
          + (f", written to {s.rejected_file}" if s.rejected_file else ""), file=out)
    if s.previous_report:
        print(f"  the report of an earlier run was moved to {s.previous_report} (with any fixes made in it)", file=out)
    for note, n in s.notes.items():
        print(f"  warning:   {n} orders: {note} (first at line {s.first_note_line[note]})", file=out)
    if s.rejected_rows:
        print(f"some rows were rejected: fix them in {s.rejected_file} and import that file again", file=out)
