"""Benchmark of `orderbridge import-csv`: rows/s and peak memory against a csv.reader floor.

    python bench/csv_import.py                 # 100k and 1M rows
    python bench/csv_import.py --rows 100000 300000
    python bench/csv_import.py --rows 100000 --workers 0 2     # one process, then two workers

For each size it generates a Shopify "Export orders" file (79 columns, one row per line item,
1 to 5 items per order, about 3 rows per order, some multi-line notes; as in real exports, an order's
later rows repeat Name, Created at, Email, Phone and the line-item columns) in a temp dir, then:
  floor   csv.reader over the same file, doing nothing with the rows (same process, same run);
  import  `orderbridge import-csv FILE --shop bench --preset shopify` in a subprocess, into a fresh
          SQLite outbox; wall time and the subprocess's RSS high-water mark (ru_maxrss from wait4).
Prints figures; asserts nothing (targets: peak < 150 MB at any size, import ≥ 25 % of the floor).
CPU times are printed too (the import's includes its worker processes): on a shared machine they
compare more fairly than wall times, and the load average says how shared the machine was.
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = next(csv.reader((ROOT / "tests" / "fixtures" / "csv" / "shopify_orders_export_2026.csv").open(newline="")))
PRODUCTS = [(f"Product {i} – {'Deluxe ' if i % 3 else ''}edition", f"SKU-{i:05d}" if i % 4 else "", f"{5 + (i * 7) % 90}.{i % 100:02d}")
            for i in range(400)]


def order_rows(n: int, rnd: random.Random) -> list[list[str]]:
    """The rows of order n: order fields on the first row only, as Shopify writes them."""
    name, created = f"#{10000 + n}", f"2025-{1 + n % 12:02d}-{1 + n % 28:02d} {n % 24:02d}:{n % 60:02d}:{(n * 7) % 60:02d} +0200"
    lines = [PRODUCTS[rnd.randrange(len(PRODUCTS))] for _ in range(rnd.choice((1, 2, 3, 3, 4, 5)))]
    qtys = [rnd.choice((1, 1, 2, 3)) for _ in lines]
    subtotal = sum(float(p) * q for (_, _, p), q in zip(lines, qtys))
    fin, ful = rnd.choice((("paid", "fulfilled"), ("paid", "unfulfilled"), ("pending", "unfulfilled"), ("refunded", "fulfilled")))
    rows = []
    for i, ((pname, sku, price), q) in enumerate(zip(lines, qtys)):
        r = dict.fromkeys(HEADER, "")
        r.update({"Name": name, "Created at": created, "Lineitem quantity": str(q), "Lineitem name": pname,
                  "Lineitem price": price, "Lineitem sku": sku, "Lineitem requires shipping": "true",
                  "Lineitem taxable": "true", "Lineitem fulfillment status": "pending", "Vendor": "Bench",
                  "Lineitem discount": "0.00", "Email": f"buyer{n % 50000}@example.com",
                  # every row of an order repeats these, Phone too when present (reference/shopify.md, #71737)
                  "Phone": f"+4930{n % 10000000:07d}" if n % 3 == 0 else ""})
        if i == 0:
            r.update({"Financial Status": fin, "Fulfillment Status": ful, "Currency": "EUR", "Subtotal": f"{subtotal:.2f}",
                      "Shipping": "4.95", "Taxes": "0.00", "Total": f"{subtotal + 4.95:.2f}", "Discount Amount": "0.00",
                      "Shipping Method": "Standard", "Billing Name": f"Buyer {n % 50000} Example",
                      "Billing Phone": f"+49 30 {n % 10000000:07d}", "Shipping Name": f"Buyer {n % 50000} Example",
                      "Shipping Address1": f"{n % 200} Long Street", "Shipping City": "Berlin", "Shipping Zip": "'10115",
                      "Shipping Country": "DE", "Payment Method": "Shopify Payments", "Id": str(5_000_000_000 + n),
                      "Risk Level": "Low", "Source": "web", "Accepts Marketing": "no",
                      "Notes": "Leave at the door,\nplease" if n % 10 == 0 else ""})
        rows.append([r[h] for h in HEADER])
    return rows


def generate(path: Path, n_rows: int) -> tuple[int, int]:
    rnd, rows, orders = random.Random(42), 0, 0
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        while rows < n_rows:
            for r in order_rows(orders, rnd)[: n_rows - rows]:
                w.writerow(r)
                rows += 1
            orders += 1
    return rows, orders


def floor(path: Path) -> tuple[float, float]:
    """Wall and CPU seconds of csv.reader over the file, doing nothing with the rows."""
    start, cpu = time.perf_counter(), time.process_time()
    with path.open(newline="", encoding="utf-8") as f:
        for _ in csv.reader(f):
            pass
    return time.perf_counter() - start, time.process_time() - cpu


def run_import(path: Path, work: Path, workers: int | None) -> tuple[float, float, float, str]:
    cfg = work / "bench.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{work}/outbox.db"\n\n[[shops]]\nname = "bench"\nplatform = "csv"\n')
    exe = Path(sys.executable).with_name("orderbridge")
    cmd = [str(exe), "--config", str(cfg), "import-csv", str(path), "--shop", "bench", "--preset", "shopify"]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    (work / "outbox.db").unlink(missing_ok=True)
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        print(out)
        raise SystemExit(f"import exited with {os.waitstatus_to_exitcode(status)}")
    # ru_maxrss is in KiB on Linux; the CPU time includes the interpreter's start (~0.3 s)
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def bench(n_rows: int, workers: list[int | None]) -> None:
    work = Path(tempfile.mkdtemp(prefix="ob-bench-csv-"))
    try:
        path = work / "orders_export.csv"
        t = time.perf_counter()
        rows, orders = generate(path, n_rows)
        size = path.stat().st_size / 1e6
        print(f"{rows:,} rows, {orders:,} orders, {size:.0f} MB (generated in {time.perf_counter() - t:.0f} s)")
        for w in workers:
            fl, fl_cpu = floor(path)
            load = os.getloadavg()[0]
            elapsed, cpu, peak_mb, out = run_import(path, work, w)
            enq = next((ln.split()[1] for ln in out.splitlines() if ln.strip().startswith("enqueued:")), "?")
            print(f"  workers: {'default (one per CPU)' if w is None else w}; {os.cpu_count()} CPUs, "
                  f"load average {load:.1f} before the run")
            print(f"  floor  csv.reader only : {rows / fl:>10,.0f} rows/s  ({fl:.1f} s wall, {fl_cpu:.1f} s CPU)")
            print(f"  import into outbox     : {rows / elapsed:>10,.0f} rows/s  ({elapsed:.1f} s wall, {cpu:.1f} s CPU, "
                  f"{enq} orders enqueued)")
            print(f"  ratio import / floor   : {fl / elapsed:>10.1%}   wall (target ≥ 25 %); by CPU time {fl_cpu / cpu:.1%}")
            print(f"  peak RSS of the import : {peak_mb:>10.0f} MB       (target < 150 MB; the largest process)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--workers", type=int, nargs="+", help="import with each of these --workers values "
                    "(default: the command's default)")
    args = ap.parse_args()
    for n in args.rows:
        bench(n, args.workers or [None])


if __name__ == "__main__":
    main()
