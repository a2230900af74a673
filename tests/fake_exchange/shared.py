"""State and helpers every faked venue shares (one process, every port).

The venue modules (venues/*.py) and the server (fake_exchange.py) import
this module by name, so there is one copy of the state however the server
was started.
"""
import base64
import hashlib
import hmac
import json
import sys
import threading
import time

CREDS = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
LOG = []
LOCK = threading.Lock()
ORDERS = {"n": 0}
# Test controls: the weight Binance reports, how far this "exchange's" clock
# is off, and a delay before every answer.
CONTROL = {"weight": 10, "skew_ms": 0, "delay_ms": 0}
# Paths that answer an error (a partial failure): /__control?fail=/a/path.
FAIL = set()
# Open orders per exchange: {"binance": [{"symbol": .., "id": .., "market": "spot"|"futures"}], ...}
OPEN = {}
# Dead-man timers: {(exchange, scope): deadline_seconds}; FIRED: what ran out.
TIMERS = {}
FIRED = []
# Key information per exchange (the exchange's own answer body); each venue
# module puts a broad key here by default; POST /__keyinfo replaces them.
KEYINFO = {}


class Refused(Exception):
    """An answer ending a request early: raise Refused(status, body)."""

    def __init__(self, status, body, headers=None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def add_open(exchange, symbol, oid, market="spot", **extra):
    """Records an open order; `extra` keeps what a venue lists back (price, amount, side)."""
    with LOCK:
        OPEN.setdefault(exchange, []).append(dict(extra, symbol=symbol, id=str(oid), market=market))


def cancel_open(exchange, pred=lambda o: True):
    """Cancels the open orders of `exchange` matching `pred`; returns them."""
    with LOCK:
        orders = OPEN.get(exchange, [])
        gone = [o for o in orders if pred(o)]
        OPEN[exchange] = [o for o in orders if not pred(o)]
        return gone


def open_orders(exchange, pred=lambda o: True):
    """A copy of the open orders of `exchange` matching `pred`."""
    with LOCK:
        return [dict(o) for o in OPEN.get(exchange, []) if pred(o)]


def arm(exchange, scope, seconds):
    """Sets (or, with 0 or less, clears) a dead-man timer."""
    with LOCK:
        if seconds <= 0:
            TIMERS.pop((exchange, scope), None)
        else:
            TIMERS[(exchange, scope)] = time.time() + seconds


def disarm(exchange):
    """Clears every dead-man timer of `exchange` (a setting that replaces the last one)."""
    with LOCK:
        for k in [k for k in TIMERS if k[0] == exchange]:
            del TIMERS[k]


def watch_timers():
    """Runs out the dead-man timers: the exchange cancels by itself."""
    while True:
        time.sleep(0.1)
        now = time.time()
        with LOCK:
            due = [k for k, t in TIMERS.items() if t <= now]
            for k in due:
                del TIMERS[k]
        for exchange, scope in due:
            gone = cancel_open(exchange, lambda o: scope == "*" or o["symbol"] == scope)
            with LOCK:
                FIRED.append({"exchange": exchange, "scope": scope, "at": now, "cancelled": len(gone)})


def cred_sets(exchange):
    sets = CREDS.get(exchange, {})
    return sets if isinstance(sets, list) else [sets]


def cred(exchange, key):
    """The credential set of `exchange` whose key is `key` (else the first)."""
    sets = cred_sets(exchange)
    for c in sets:
        if c.get("key") == key:
            return c
    return sets[0] if sets else {}


def asym_ok(c, text, sig_b64):
    """Checks a base64 signature of `text` against the set's PEM public key."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
    try:
        key = serialization.load_pem_public_key(c["public_key"].encode())
        sig = base64.b64decode(sig_b64, validate=True)
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, text.encode())
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, text.encode(), padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
        return True
    except Exception:
        return False


def hmac_text(secret, text, digest=hashlib.sha256):
    return hmac.new(secret.encode(), text.encode(), digest)


def sig_ok(c, text, given, hex_hmac=True):
    """A signature check: the set's public key if it has one, else its HMAC secret."""
    if "public_key" in c:
        return asym_ok(c, text, given)
    mac = hmac_text(c.get("secret", ""), text)
    expected = mac.hexdigest() if hex_hmac else base64.b64encode(mac.digest()).decode()
    return hmac.compare_digest(expected, given or "")


def now_ms():
    return int(time.time() * 1000) + CONTROL["skew_ms"]


def next_order_id():
    with LOCK:
        ORDERS["n"] += 1
        return ORDERS["n"]


def json_body(body, default=None):
    """The request's JSON body (`default` when empty or not JSON)."""
    try:
        return json.loads(body) if body else ({} if default is None else default)
    except ValueError:
        return {} if default is None else default
