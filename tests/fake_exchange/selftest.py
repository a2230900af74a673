#!/usr/bin/env python3
"""The fake exchange's verifiers agree with ccxt's signing (without keyward).

Starts fake_exchange.py with made-up credentials, then for each of the ten
exchanges drives ccxt, unchanged, with the credentials the fake knows:
load_markets, create_order (limit buy), fetch_open_orders (the order is
listed), cancel_order (it is gone), fetch_balance and fetch_my_trades all
succeed; then the same client with a wrong secret is refused. Coinbase runs
twice: an Ed25519 key (base64 secret) and an EC P-256 key (PEM secret, the
fake holding only its public key).

ccxt signs every request for the exchange's real URL (so the hosts it signs,
HTX's and Coinbase's, are the real ones); only the transport is redirected:
the request goes to the venue's own port on the fake, with the real host in
its Host header.

Every request ccxt made must have had an answer of the venue's own (not
its catch-all); -v lists them.

Usage: selftest.py [-v] [RUN ...]   (needs ccxt and cryptography; exits 1 on a failure)
"""
import base64
import http.client
import json
import os
import subprocess
import sys
import time
import traceback
import urllib.parse
import urllib.request

import ccxt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

HERE = os.path.dirname(os.path.abspath(__file__))


def ed25519_secret():
    """A base64 Ed25519 key as the CDP portal gives it: seed || public key."""
    k = ed25519.Ed25519PrivateKey.generate()
    seed = k.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pub = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(seed + pub).decode()


def ec_pem():
    """An EC P-256 key: (private PEM as Coinbase gives it, public PEM)."""
    k = ec.generate_private_key(ec.SECP256R1())
    private = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()).decode()
    public = k.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


CB_ED_KEY = "organizations/0c4f6d21-selftest/apiKeys/6f1e2a7b-ed25519"
CB_EC_KEY = "organizations/0c4f6d21-selftest/apiKeys/9a8b7c6d-ecdsa"
CB_ED_SECRET = ed25519_secret()
CB_EC_PRIVATE, CB_EC_PUBLIC = ec_pem()
KRAKEN_SECRET = base64.b64encode(b"selftest-kraken-secret-" * 3).decode()

# What the fake knows: the exchange's side of each key.
FAKE_CREDS = {
    "binance": {"key": "BIN-SELFTEST-KEY", "secret": "bin-selftest-secret"},
    "okx": {"key": "OKX-SELFTEST-KEY", "secret": "okx-selftest-secret", "passphrase": "okx-pass"},
    "bybit": {"key": "BYBIT-SELFTEST-KEY", "secret": "bybit-selftest-secret"},
    "bitget": {"key": "BG-SELFTEST-KEY", "secret": "bg-selftest-secret", "passphrase": "bg-pass"},
    "kraken": {"key": "KRAKEN-SELFTEST-KEY", "secret": KRAKEN_SECRET},
    "kucoin": {"key": "KC-SELFTEST-KEY", "secret": "kc-selftest-secret", "passphrase": "kc-pass"},
    "gate": {"key": "GATE-SELFTEST-KEY", "secret": "gate-selftest-secret"},
    "deribit": {"key": "DRB-SELFTEST", "secret": "deribit-selftest-secret"},
    "coinbase": [{"key": CB_ED_KEY, "secret": CB_ED_SECRET}, {"key": CB_EC_KEY, "public_key": CB_EC_PUBLIC}],
    "htx": {"key": "htx-selftest-access-key", "secret": "htx-selftest-secret"},
}

# run name -> (ccxt id, venue, ccxt credentials, ccxt options, wrong secret, (symbol, amount, price))
SPOT = {"fetchMarkets": {"types": ["spot"]}}
RUNS = {
    "binance": ("binance", "binance", {"apiKey": "BIN-SELFTEST-KEY", "secret": "bin-selftest-secret"},
                {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
                "wrong", ("BTC/USDT", 0.01, 50000)),
    "okx": ("okx", "okx", {"apiKey": "OKX-SELFTEST-KEY", "secret": "okx-selftest-secret", "password": "okx-pass"},
            {"fetchMarkets": {"types": ["spot"]}}, "wrong", ("BTC/USDT", 0.01, 50000)),
    "bybit": ("bybit", "bybit", {"apiKey": "BYBIT-SELFTEST-KEY", "secret": "bybit-selftest-secret"},
              {"fetchMarkets": {"types": ["spot"]}, "enableUnifiedAccount": True, "enableUnifiedMargin": False},
              "wrong", ("BTC/USDT", 0.01, 50000)),
    "bitget": ("bitget", "bitget", {"apiKey": "BG-SELFTEST-KEY", "secret": "bg-selftest-secret", "password": "bg-pass"},
               {"fetchMarkets": {"types": ["spot"]}}, "wrong", ("BTC/USDT", 0.01, 50000)),
    "kraken": ("kraken", "kraken", {"apiKey": "KRAKEN-SELFTEST-KEY", "secret": KRAKEN_SECRET}, {},
               base64.b64encode(b"w" * 64).decode(), ("BTC/USD", 0.01, 37500)),
    "kucoin": ("kucoin", "kucoin", {"apiKey": "KC-SELFTEST-KEY", "secret": "kc-selftest-secret", "password": "kc-pass"},
               {"fetchMarkets": {"types": ["spot"]}}, "wrong", ("BTC/USDT", 0.01, 50000)),
    "gate": ("gate", "gate", {"apiKey": "GATE-SELFTEST-KEY", "secret": "gate-selftest-secret"},
             {"fetchMarkets": {"types": ["spot"]}}, "wrong", ("BTC/USDT", 0.01, 50000)),
    "deribit": ("deribit", "deribit", {"apiKey": "DRB-SELFTEST", "secret": "deribit-selftest-secret"}, {},
                "wrong", ("BTC/USDC", 0.01, 50000)),
    "coinbase": ("coinbase", "coinbase", {"apiKey": CB_ED_KEY, "secret": CB_ED_SECRET}, {},
                 ed25519_secret(), ("BTC/USDT", 0.01, 50000)),
    "coinbase-ec": ("coinbase", "coinbase", {"apiKey": CB_EC_KEY, "secret": CB_EC_PRIVATE}, {},
                    ec_pem()[0], ("BTC/USDT", 0.01, 50000)),
    "htx": ("htx", "htx", {"apiKey": "htx-selftest-access-key", "secret": "htx-selftest-secret"},
            {"fetchMarkets": {"types": {"spot": True, "linear": False, "inverse": False}}},
            "wrong", ("BTC/USDT", 0.01, 50000)),
}


def start_fake():
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_exchange.py"), json.dumps(FAKE_CREDS)],
                            stdout=subprocess.PIPE, text=True, cwd="/")
    first, second = proc.stdout.readline(), proc.stdout.readline()
    if not first.startswith("listening on ") or not second.startswith("ports "):
        proc.kill()
        raise SystemExit("the fake did not start: %r %r" % (first, second))
    return proc, int(first.split()[-1]), json.loads(second[len("ports "):])


def redirect(ex, port):
    """Sends ccxt's requests to the fake's port, keeping the real host in Host."""
    fetch = ex.fetch

    def to_fake(url, method="GET", headers=None, body=None):
        u = urllib.parse.urlsplit(url)
        headers = dict(headers or {}, Host=u.netloc)
        return fetch(urllib.parse.urlunsplit(("http", "127.0.0.1:%d" % port, u.path, u.query, "")), method,
                     headers, body)

    ex.fetch = to_fake
    return ex


def client(run, ports, secret=None):
    ex_id, venue, creds, options, _, _ = RUNS[run]
    cfg = dict(creds, enableRateLimit=False, timeout=10000, options=dict(options))
    if secret is not None:
        cfg["secret"] = secret
    ex = getattr(ccxt, ex_id)(cfg)
    ex.has["fetchCurrencies"] = False
    return redirect(ex, ports[venue])


def fake_log(port, reset=False):
    with urllib.request.urlopen("http://127.0.0.1:%d/%s" % (port, "__reset" if reset else "__log")) as r:
        return json.load(r)


# Which signed requests of a run to replay altered (each must be refused):
# (method, path prefix, what to alter: "body", "query", "path" or "host").
# By default: ccxt's order, its body (or query) changed.
TAMPER = {"htx": [("GET", "/v1/order/openOrders", "query"), ("GET", "/v1/order/openOrders", "host")],
          "coinbase": [("POST", "/api/v3/brokerage/orders", "path")],
          "coinbase-ec": [("POST", "/api/v3/brokerage/orders", "path")],
          "deribit": [("GET", "/api/v2/private/buy", "query")]}


def altered(entry, how):
    """The request of a log entry with one thing changed: (method, target, body, headers)."""
    path, query, body = entry["path"], entry["query"], entry["body"]
    skip = {"content-length", "accept-encoding", "connection"}
    headers = {k: v for k, v in entry["headers"].items() if k not in skip}
    if how == "path":
        path += "/batch_cancel"
    elif how == "host":
        headers["host"] = "api-aws.huobi.pro"
    elif how == "query" or not body:
        query = query.replace("btcusdt", "ethusdt").replace("50000", "50001")
    else:
        body = body.replace("50000", "50001").replace("0.01", "0.02")
    return entry["method"], path + ("?" + query if query else ""), body, headers


def refused(status, body):
    """Whether an answer is a refusal, in any venue's way of saying it."""
    try:
        v = json.loads(body)
    except ValueError:
        return status >= 400
    if not isinstance(v, dict):
        return status >= 400
    return status >= 400 or v.get("retCode") not in (None, 0) or bool(v.get("error")) or v.get("status") == "error"


def send(port, method, target, body, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, target, body=body.encode() if body else None, headers=headers)
    r = conn.getresponse()
    answer = r.read().decode()
    conn.close()
    return r.status, answer


def replay_altered(run, port, calls):
    """Replays signed requests ccxt sent, altered: the signature must no longer hold."""
    done = []
    for method, prefix, how in TAMPER.get(run, [("POST", "", "body")]):
        entry = next(c for c in calls if c["method"] == method and c["path"].startswith(prefix) and c["status"] < 300
                     and (prefix or "order" in c["path"].lower()))
        m, target, body, headers = altered(entry, how)
        status, answer = send(port, m, target, body, headers)
        assert refused(status, answer), "%s altered (%s) was accepted: %s %s" % (
            entry["path"], how, status, answer[:200])
        done.append("%s %s %s -> %s" % (how, m, entry["path"], status))
    return done


def jwt(key, kid, claims, alg):
    """A JWT made here (not by ccxt), to try the Coinbase verifier's claim checks."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import utils
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = enc(json.dumps({"alg": alg, "kid": kid, "typ": "JWT", "nonce": "00"}).encode())
    text = "%s.%s" % (head, enc(json.dumps(claims).encode()))
    if alg == "EdDSA":
        sig = key.sign(text.encode())
    else:
        r, s = utils.decode_dss_signature(key.sign(text.encode(), ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return "%s.%s" % (text, enc(sig))


def coinbase_claims(port):
    """Each claim the verifier reads, wrong once: refused; all right: accepted."""
    ed = ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(CB_ED_SECRET)[:32])
    pem = serialization.load_pem_private_key(CB_EC_PRIVATE.encode(), password=None)
    path, now = "/api/v3/brokerage/accounts", int(time.time())
    good = {"sub": None, "iss": "cdp", "nbf": now, "exp": now + 120, "uri": "GET api.coinbase.com" + path}
    cases = [("right", {}, True), ("kid is not sub", {"sub": "someone-else"}, False),
             ("expired", {"nbf": now - 300, "exp": now - 180}, False), ("not yet valid", {"nbf": now + 600}, False),
             ("another path", {"uri": "GET api.coinbase.com/v2/accounts"}, False),
             ("another method", {"uri": "POST api.coinbase.com" + path}, False),
             ("another host", {"uri": "GET api.coinbase.example" + path}, False),
             ("no uri", {"uri": None}, False)]
    for key, kid, alg in ((ed, CB_ED_KEY, "EdDSA"), (pem, CB_EC_KEY, "ES256"), (ed, "unknown-key", "EdDSA")):
        for name, change, ok in cases:
            claims = {k: v for k, v in dict(dict(good, sub=kid), **change).items() if v is not None}
            if alg == "EdDSA" and "uri" in claims:
                claims["uris"] = [claims.pop("uri")]  # the Ed25519 form, as ccxt writes it
            status, answer = send(port, "GET", path, "", {"Authorization": "Bearer " + jwt(key, kid, claims, alg)})
            ok = ok and kid != "unknown-key"
            assert (status == 200) == ok, "%s %s (%s): %s %s" % (alg, kid, name, status, answer[:200])
    return "%d JWTs" % (3 * len(cases))


def check(run, ports):
    symbol, amount, price = RUNS[run][5]
    ex = client(run, ports)
    out = {}
    assert symbol in ex.load_markets(), "no %s market" % symbol
    order = ex.create_order(symbol, "limit", "buy", amount, price)
    oid = order.get("id")
    assert oid, "no order id: %s" % order
    out["order"] = oid
    listed = [o["id"] for o in ex.fetch_open_orders(symbol)]
    assert oid in listed, "order %s not among the open ones %s" % (oid, listed)
    ex.cancel_order(oid, symbol)
    listed = [o["id"] for o in ex.fetch_open_orders(symbol)]
    assert oid not in listed, "order %s still open after cancel" % oid
    balance = ex.fetch_balance()
    out["balance"] = sorted(k for k, v in balance.get("total", {}).items() if v)
    assert out["balance"], "an empty balance: %s" % balance.get("total")
    ex.fetch_my_trades(symbol)
    wrong = client(run, ports, secret=RUNS[run][4])
    try:
        wrong.fetch_balance()
        raise AssertionError("a wrong secret was accepted")
    except ccxt.AuthenticationError as e:
        out["wrong_secret"] = "%s: %s" % (type(e).__name__, str(e)[:120])
    # Every call ccxt made had an answer of its own (not a venue's catch-all).
    calls = fake_log(ports[RUNS[run][1]])
    out["altered"] = replay_altered(run, ports[RUNS[run][1]], calls)
    if run == "coinbase":
        out["claims"] = coinbase_claims(ports["coinbase"])
    out["calls"] = ["%s %s %s" % (c["method"], c["path"], c["status"]) for c in calls]
    unhandled = ["%s %s" % (c["method"], c["path"]) for c in calls if c.get("unhandled")]
    assert not unhandled, "answered by the catch-all: %s" % unhandled
    return out


VERBOSE = "-v" in sys.argv


def main():
    wanted = [a for a in sys.argv[1:] if a != "-v"] or list(RUNS)
    if set(wanted) - set(RUNS):
        raise SystemExit("unknown: %s (known: %s)" % (" ".join(sorted(set(wanted) - set(RUNS))), " ".join(RUNS)))
    started = time.time()
    proc, _, ports = start_fake()
    failed = 0
    try:
        for run in wanted:
            t = time.time()
            fake_log(ports[RUNS[run][1]], reset=True)
            try:
                out = check(run, ports)
                calls = out.pop("calls")
                print("ok   %-12s %.1fs %s" % (run, time.time() - t, json.dumps(out)), flush=True)
                if VERBOSE:
                    print("".join("       %s\n" % c for c in calls), end="")
            except Exception as e:
                failed += 1
                print("FAIL %-12s %s: %s" % (run, type(e).__name__, str(e)[:400]), flush=True)
                if os.environ.get("SELFTEST_TRACE"):
                    traceback.print_exc()
    finally:
        proc.kill()
        proc.wait()
    print("%d of %d failed, %.1fs" % (failed, len(wanted), time.time() - started))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
