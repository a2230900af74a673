#!/usr/bin/env python3
"""A local fake of Binance, OKX, Bybit, Bitget, Kraken, KuCoin, Gate,
Deribit, Coinbase (Advanced Trade) and HTX (spot) for keyward's tests.

It checks every private request's signature with Python's own hmac,
hashlib and base64 (an implementation independent of keyward's), and
asymmetric keys with the `cryptography` package: a credential set
registered with a "public_key" (PEM, as an exchange's key page takes a
self-generated key: Ed25519, or RSA PKCS#1 v1.5 SHA-256) for Binance, Bybit
and Bitget, and Coinbase's JWTs (EdDSA or ES256). It refuses bad ones the way
the exchange would (its error body and status), and answers the calls ccxt
makes for load_markets, create_order, fetch_open_orders, cancel_order,
fetch_balance and fetch_my_trades (selftest.py runs ccxt against each venue
to show it), and the market data Freqtrade reads from Binance (klines,
tickers, order book; Binance spot orders are kept of record). It records
every request it saw, with its venue, the status it answered and a
refusal's code ("venue", "status", "error"), so a test can show what reached
the "exchange" (GET /__log, POST /__reset); a request only a venue's
catch-all answered is marked "unhandled".

Ports. The main port (first stdout line, "listening on PORT") dispatches by
path prefix: /api/v3/, /sapi/, /fapi/, /dapi/ Binance; /api/v5/ OKX; /api/v2/
Bitget; /v5/ Bybit; /0/ Kraken. The other venues' paths collide with those
(KuCoin /api/v1-v3, Deribit /api/v2, Coinbase /api/v3 and /v2, HTX /v1 /v2),
so every venue also has a port of its own that sends every request to it:
the second stdout line is `ports {"binance": P1, "okx": P2, ...}` (JSON).
All ports share one state, and the control endpoints below answer on each.

It also keeps what incident response needs: the open orders placed through
it (cancelled by the exchanges' cancel-all calls), each exchange's
key-information answer (POST /__keyinfo sets it: a broad key by default),
and the dead-man timers (OKX cancel-all-after, Kraken CancelAllOrdersAfter,
Binance futures countdownCancelAll, KuCoin dead-cancel-all, Gate
countdown_cancel_all, HTX cancel-all-after): a timer that runs out cancels
that exchange's open orders by itself, as the exchange would (GET /__state
shows open orders, timers and what fired). /__control?fail=/a/path makes
that path answer an error (a partial failure).

Each exchange's credentials may be one set or a list of sets: a real
exchange accepts every key registered on the account, old and new alike,
while a rotation overlaps them. POST /__creds with a JSON object replaces
the sets of the exchanges it names (a key registered or deleted on the
exchange's key page).

Usage: fake_exchange.py CREDENTIALS_JSON   (from any directory)
CREDENTIALS_JSON: {"binance": {"key","secret"}, "okx": {"key","secret","passphrase"},
                   "bybit": {"key","secret"}, "bitget": {"key","secret","passphrase"},
                   "kraken": {"key","secret" (base64)}, "kucoin": {"key","secret","passphrase"},
                   "gate": {"key","secret"}, "deribit": {"key" (client id),"secret"},
                   "coinbase": {"key" (key name),"secret" (base64 Ed25519, 32 or 64 bytes)},
                   "htx": {"key","secret"}}
A set may give "public_key" (PEM) instead of "secret" (binance, bybit, bitget);
a Coinbase set may give an EC P-256 key as "private_key" or "public_key" (PEM),
or a PEM private key as "secret" (ccxt's form).
Venue modules: venues/<exchange>.py; shared state: shared.py. Stdlib only,
but for `cryptography` where a key is asymmetric.
"""
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import shared  # noqa: E402
from shared import CONTROL, CREDS, FAIL, FIRED, KEYINFO, LOCK, LOG, OPEN, TIMERS, Refused, now_ms  # noqa: E402
from venues import MAIN_PREFIXES, VENUES  # noqa: E402


def error_of(status, obj):
    """The error code of a refusal, in the venue's own field; None for an acceptance."""
    if not isinstance(obj, dict):
        return None
    if status >= 400:
        error = obj.get("code", obj.get("label", obj.get("error")))
        return error.get("code") if isinstance(error, dict) else error
    if obj.get("retCode"):
        return obj["retCode"]  # Bybit
    if obj.get("status") == "error":
        return obj.get("err-code")  # HTX v1
    if isinstance(obj.get("error"), list) and obj["error"]:
        return obj["error"][0]  # Kraken
    if isinstance(obj.get("code"), int) and obj["code"] != 200 and "message" in obj:
        return obj["code"]  # HTX v2
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The venue of a dedicated port; None on the main port (dispatch by prefix).
    venue = None

    def log_message(self, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle and
        # delayed ACKs add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def date_time_string(self, timestamp=None):
        return super().date_time_string(now_ms() / 1000.0)

    def reply(self, status, obj, headers=None):
        entry = getattr(self, "_entry", None)
        if entry is not None:
            with LOCK:
                entry["status"] = status
                error = error_of(status, obj)
                if error is not None:
                    entry["error"] = error
            self._entry = None
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def unhandled(self):
        """Marks the request's log entry: answered by a venue's catch-all."""
        if getattr(self, "_entry", None) is not None:
            with LOCK:
                self._entry["unhandled"] = True

    def control(self, path, query, body):
        """The test controls; True when `path` was one."""
        if path == "/__log":
            with LOCK:
                self.reply(200, LOG)
        elif path == "/__reset":
            with LOCK:
                LOG.clear()
            self.reply(200, {})
        elif path == "/__creds":
            with LOCK:
                CREDS.update(json.loads(body or "{}"))
            self.reply(200, {})
        elif path == "/__control":
            for k, v in urllib.parse.parse_qsl(query):
                if k == "fail":
                    FAIL.add(v)
                elif k == "unfail":
                    FAIL.discard(v)
                else:
                    CONTROL[k] = int(v)
            self.reply(200, dict(CONTROL, fail=sorted(FAIL)))
        elif path == "/__keyinfo":
            with LOCK:
                KEYINFO.update(json.loads(body or "{}"))
            self.reply(200, {})
        elif path == "/__state":
            with LOCK:
                self.reply(200, {"open": OPEN, "timers": {"%s %s" % k: t - time.time() for k, t in TIMERS.items()},
                                 "fired": FIRED})
        else:
            return False
        return True

    def handle_any(self):
        self._entry = None
        parsed = urllib.parse.urlsplit(self.path)
        path, query = parsed.path, parsed.query
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.control(path, query, body):
            return
        if CONTROL["delay_ms"]:
            time.sleep(CONTROL["delay_ms"] / 1000.0)
        venue = self.venue or next((v for prefixes, v in MAIN_PREFIXES if path.startswith(prefixes)), None)
        self._entry = {"method": self.command, "path": path, "query": query, "body": body,
                       "headers": {k.lower(): v for k, v in self.headers.items()}, "venue": venue}
        with LOCK:
            LOG.append(self._entry)
        if path in FAIL:
            return self.reply(503, {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."})
        if venue is None:
            return self.reply(404, {"error": "unknown path"})
        try:
            VENUES[venue](self, path, query, body)
        except Refused as r:
            self.reply(r.status, r.body, r.headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any


def serve(venue):
    """A server on an ephemeral loopback port; `venue` None: the main port."""
    handler = type("Handler_%s" % (venue or "main"), (Handler,), {"venue": venue})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    return server


def main():
    threading.Thread(target=shared.watch_timers, daemon=True).start()
    main_server = serve(None)
    own = {v: serve(v) for v in VENUES}
    for s in own.values():
        threading.Thread(target=s.serve_forever, daemon=True).start()
    ports = {v: s.server_address[1] for v, s in own.items()}
    # One write: a reader that takes only the first line and closes the pipe
    # must not make the second one fail.
    sys.stdout.write("listening on %d\nports %s\n" % (main_server.server_address[1], json.dumps(ports)))
    sys.stdout.flush()
    main_server.serve_forever()


if __name__ == "__main__":
    main()
