"""Shopify webhook receiver: verify the HMAC on the raw body, commit the delivery, answer 200.

The answer must come fast (Shopify gives up after 5 s and retries only 8 times), so nothing is
parsed or translated here: the inbox job does that later. See `store_delivery` for why the
write is serialised per process on SQLite.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from datetime import datetime, timezone
from typing import Mapping

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connector.inbox import record_delivery

PLATFORM = "shopify"
# The Events delivery mechanism drops the `X-` prefix (reference/shopify.md section 1.1): accept both.
HMAC_HEADERS = ("X-Shopify-Hmac-Sha256", "Shopify-Hmac-Sha256")
ID_HEADERS = ("X-Shopify-Webhook-Id", "Shopify-Webhook-Id")
TOPIC_HEADERS = ("X-Shopify-Topic", "Shopify-Topic")
_KEPT_PREFIXES = ("x-shopify-", "shopify-", "content-type", "user-agent")

blueprint = Blueprint("shopify_webhooks", __name__)


def sign(secret: str, body: bytes) -> str:
    """Shopify's signature: base64 (not hex) of HMAC-SHA256 over the raw body bytes."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """True when `signature` is the signature of `body`; compared in constant time."""
    if not signature:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), signature.strip().encode())


def _first(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((headers.get(n) for n in names if headers.get(n)), None)


def _error(status: int, message: str):
    return jsonify({"error": message}), status


# SQLite allows one writer at a time and resolves contention by sleeping in busy_timeout steps of
# up to 100 ms: that is where a naive commit-per-thread loses its tail latency. And a thread that
# leaves the GIL inside sqlite (it does, for every statement) waits up to the switch interval (5 ms)
# to get it back, holding the write lock all the while. So on SQLite each process writes through one
# connection, and whichever request thread holds the write lock commits every delivery queued
# meanwhile in one transaction (leader/followers: no writer thread, no hand-off), with one prepared
# INSERT. It writes exactly what `connector.inbox.record_delivery` writes; PostgreSQL, where
# concurrent writers are fine, goes through record_delivery itself.
_DROP_HEADERS = {"authorization", "cookie", "proxy-authorization"}
_INSERT = ("INSERT INTO inbox (platform, shop, topic, delivery_id, headers, body, received_at, state, attempts) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, 'new', 0) ON CONFLICT DO NOTHING")


class _Slot:
    __slots__ = ("row", "done", "result", "error")

    def __init__(self, row: tuple):
        self.row, self.done, self.result, self.error = row, False, None, None


class _SQLiteWriter:
    CHECKPOINT_EVERY = 1.0    # seconds

    def __init__(self, path: str):
        self.lock = threading.Lock()          # held while a transaction is written
        self.queue_lock = threading.Lock()    # guards `pending` only (never held across I/O)
        self.pending: list[_Slot] = []
        self.pid = os.getpid()
        self.path = path
        self.conn = self._connect()
        # A WAL checkpoint copies pages and fsyncs: it must not sit inside the write lock, where every
        # sender waits for it. This connection never checkpoints; a thread does, every second.
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        threading.Thread(target=self._checkpoints, name="inbox-wal-checkpoint", daemon=True).start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def _checkpoints(self) -> None:
        conn = self._connect()
        while True:
            time.sleep(self.CHECKPOINT_EVERY)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:      # busy: the next round catches up
                pass

    def insert(self, row: tuple) -> int | None:
        """Commit `row`; returns its id, or None for a duplicate delivery id. Raises on a database error."""
        slot = _Slot(row)
        with self.queue_lock:
            self.pending.append(slot)
        while not slot.done:
            with self.lock:
                if slot.done:          # a leader committed it while we waited
                    break
                with self.queue_lock:
                    batch, self.pending = self.pending, []
                self._commit(batch)
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _commit(self, batch: list[_Slot]) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            for s in batch:
                cur = self.conn.execute(_INSERT, s.row)
                s.result = cur.lastrowid if cur.rowcount == 1 else None
            self.conn.execute("COMMIT")
        except Exception as e:   # noqa: BLE001 - every waiting sender must learn the outcome, or it waits forever
            for s in batch:       # first: a failed batch is never answered 200
                s.result, s.error = None, e
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            for s in batch:
                s.done = True


_writers: dict[str, _SQLiteWriter] = {}     # one per database file and process
_writers_guard = threading.Lock()


def _sqlite_writer(engine: Engine) -> _SQLiteWriter | None:
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        return None
    path = os.path.abspath(engine.url.database)
    with _writers_guard:
        w = _writers.get(path)
        if w is None or w.pid != os.getpid():      # a forked worker opens its own connection
            w = _writers[path] = _SQLiteWriter(path)
        return w


def store_delivery(engine: Engine, *, shop: str, topic: str, headers: dict, body: bytes,
                   delivery_id: str | None, platform: str = PLATFORM) -> int | None:
    """Record and commit one delivery; None when this delivery id was stored before."""
    writer = _sqlite_writer(engine)
    if writer is None:
        with Session(engine) as session:
            new_id = record_delivery(session, platform=platform, shop=shop, topic=topic, headers=headers,
                                     body=body, delivery_id=delivery_id)
            session.commit()
            return new_id
    kept = json.dumps({k: v for k, v in headers.items() if k.lower() not in _DROP_HEADERS}, sort_keys=True)
    # the text form SQLAlchemy's SQLite DateTime reads back (naive, UTC by convention)
    received = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")
    return writer.insert((platform, shop, topic or "", delivery_id or None, kept, body, received))


@blueprint.post("/webhooks/shopify/<shop>")
def receive(shop: str):
    config = current_app.config["OB_CONFIG"]
    shop_cfg = config.find_shop(shop)
    if shop_cfg is None or shop_cfg.platform != PLATFORM:
        return _error(404, f"no Shopify shop named {shop!r} in the config")
    secret = shop_cfg.webhook_secret
    if not secret:
        # Without a secret nothing can be verified, and an unverified body is never stored.
        return _error(401, f"shop {shop!r} has no webhook secret: set the environment variable named by "
                           f"webhook_secret_env ({shop_cfg.webhook_secret_env or 'not configured'})")
    body = request.get_data(cache=False)
    if not verify(secret, body, _first(request.headers, HMAC_HEADERS)):
        return _error(401, "signature does not match the body (X-Shopify-Hmac-Sha256, base64 HMAC-SHA256 "
                           "of the raw body with the shop's webhook secret)")
    headers = {k: v for k, v in request.headers.items() if k.lower().startswith(_KEPT_PREFIXES)}
    new_id = store_delivery(current_app.config["OB_ENGINE"], shop=shop, topic=_first(request.headers, TOPIC_HEADERS) or "",
                            headers=headers, body=body, delivery_id=_first(request.headers, ID_HEADERS))
    return jsonify({"ok": True, "duplicate": new_id is None}), 200
