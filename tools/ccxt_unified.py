#!/usr/bin/env python3
"""Builds ccxt-unified.json and ccxt-unified.md: the REST endpoints ccxt's
unified methods call for ten exchanges (spot and linear swaps, default
options, with the account modes that switch endpoints), compared with
keyward's catalogs.

    .venv-test/bin/python tools/ccxt_unified.py [--cached /tmp/trace.json]

It writes crates/keyward-exchanges/tests/vectors/ccxt-unified.json (which
tests/coverage.rs reads) and, beside it, a readable report in
target/ccxt-unified.md.

Sources: ccxt_unified_trace.py (dynamic: every unified call made against a
recorder standing in for request()), plus MANUAL below for requests the
trace cannot reach (the recorder's empty answer stops a call at its first
request), checked against ccxt_unified_scan.py's static call graph and the
ccxt source.
"""
import collections
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

OUT = os.path.join(ROOT, "crates", "keyward-exchanges", "tests", "vectors")
SRC = os.path.join(ROOT, "crates", "keyward-exchanges", "src")
EXCHANGES = ("binance", "okx", "bybit", "kraken", "kucoin", "bitget", "gate", "deribit", "coinbase", "htx")
UNIFIED = ["load_markets", "fetch_markets", "fetch_currencies", "fetch_time", "fetch_ticker", "fetch_tickers",
           "fetch_order_book", "fetch_ohlcv", "fetch_trades", "fetch_balance", "create_order", "cancel_order",
           "cancel_all_orders", "edit_order", "fetch_order", "fetch_orders", "fetch_open_orders",
           "fetch_closed_orders", "fetch_my_trades", "fetch_positions", "set_leverage", "set_margin_mode",
           "fetch_trading_fee", "fetch_trading_fees", "fetch_deposit_address", "fetch_deposits",
           "fetch_withdrawals", "withdraw", "transfer", "fetch_ledger"]
FUND_WORDS = ("withdraw", "transfer", "apikey", "api-key", "subaccount", "sub-account", "gift", "convert", "loan",
              "borrow", "block", "rfq", "pay", "p2p", "token", "listenkey")
FUND_METHODS = {"withdraw": "withdrawal", "transfer": "internal transfer"}
# Words for the fund-mover categories the brief names, beyond FUND_WORDS.
EXTRA_FUND = {"sub_account": "sub-account", "sub/": "sub-account", "/sub-": "sub-account", "api_key": "API key",
              "userdatastream": "listen key", "listen": "listen key", "auth": "session token",
              "universal-transfer": "transfer", "move_funds": "transfer", "inter-transfer": "transfer",
              "wallettransfer": "transfer", "/transactions": "send/transfer (v2 transactions)",
              "dw/withdraw": "withdrawal"}

# Account modes traced (ccxt picks one per account; the names used in notes).
MODE_NAMES = {
    ("kucoin", "default"): "classic",
    ("gate", "default"): "classic",
    ("bitget", "default"): "detect",
}
MODE_NOTES = {
    ("kucoin", "classic"): "classic (non-HF) spot account: /api/v1/hf/accounts/opened false, "
                           "/api/ua/v1/account/mode not UNIFIED",
    ("kucoin", "hf"): "HF spot account (options.hf, which load_markets sets from /api/v1/hf/accounts/opened)",
    ("kucoin", "uta"): "unified trading account (options.uta, detected from /api/ua/v1/account/mode)",
    ("bitget", "classic"): "classic account (options.uta false: /api/v3/account/settings fails)",
    ("bitget", "uta"): "unified trading account (options.uta true: /api/v3/account/settings answers)",
    ("gate", "classic"): "classic account (options.unifiedAccount false: /api/v4/account/detail key.mode != 2)",
    ("gate", "unified"): "unified account (options.unifiedAccount true: key.mode == 2)",
    ("bybit", "uta"): "unified trading account (/v5/user/query-api uta=1; the usual case)",
    ("bybit", "classic"): "classic account (/v5/user/query-api uta=0)",
}
DETECTION = {
    ("kucoin", "/api/ua/v1/account/mode"): "account-mode detection (options.uta unset), once per instance",
    ("kucoin", "/api/v1/hf/accounts/opened"): "HF-account detection in load_markets (options.hf unset)",
    ("bitget", "/api/v3/account/settings"): "UTA detection (options.uta unset), once per instance; "
                                            "an error means classic",
    ("gate", "/api/v4/account/detail"): "unified-account detection (options.unifiedAccount unset), once; "
                                        "an error means classic",
    ("bybit", "/v5/user/query-api"): "unified-account detection (is_unified_enabled), once per instance",
    ("bybit", "/v5/account/info"): "unified-account detection (is_unified_enabled), once per instance",
    ("htx", "/v1/account/accounts"): "account-id lookup (load_accounts), once per instance",
    ("coinbase", "/api/v3/brokerage/accounts"): "account-id lookup (load_accounts), once per instance",
}

# Requests the trace cannot reach, from ccxt's source (checked by hand).
MANUAL = {
    "htx": {
        "fetch_markets": [
            ("GET", "/linear-swap-api/v1/swap_contract_info", "api.hbdm.vn",
             "linear swaps/futures (options.fetchMarkets.types.linear, default on)"),
            ("GET", "/swap-api/v1/swap_contract_info", "api.hbdm.vn",
             "inverse swaps (types.inverse, default on)"),
            ("GET", "/api/v1/contract_contract_info", "api.hbdm.vn", "inverse futures (types.inverse, default on)"),
        ],
    },
    "coinbase": {
        "fetch_time": [
            ("GET", "/api/v3/brokerage/time", "api.coinbase.com",
             "only with options.fetchTime = 'v3PublicGetBrokerageTime' (default v2PublicGetTime)"),
        ],
        "fetch_balance": [
            ("GET", "/api/v3/brokerage/accounts", "api.coinbase.com",
             "only with options.fetchBalance = 'v3PrivateGetBrokerageAccounts' (default v2PrivateGetAccounts)"),
        ],
        "fetch_deposit_address": [
            ("GET", "/api/v3/brokerage/accounts", "api.coinbase.com",
             "account-id lookup (load_accounts) when no account_id param is given"),
            ("GET", "/v2/accounts/{account_id}/addresses", "api.coinbase.com",
             "needs params.account_id (or the lookup above); ccxt lists the account's addresses"),
        ],
    },
    "kucoin": {
        "fetch_my_trades": [
            ("GET", "/api/v1/limit/fills", "api.kucoin.com",
             "only with options.fetchMyTradesMethod = 'privateGetLimitFills' (classic spot; default privateGetFills)"),
        ],
    },
    "okx": {
        "create_order": [
            ("POST", "/api/v5/trade/order", "www.okx.com",
             "only with options.createOrder = 'privatePostTradeOrder' (default is batch-orders)"),
        ],
    },
}


def routes():
    """keyward's base_urls: path prefix -> upstream host, per exchange."""
    out = {}
    for ex in EXCHANGES:
        path = os.path.join(SRC, ex + ".rs")
        if not os.path.exists(path):
            continue
        text = open(path).read()
        m = re.search(r"fn base_urls\(&self\).*?\{(.*?)\n    \}", text, re.S)
        out[ex] = re.findall(r'\("(/[^"]*)",\s*"https://([^"]+)"\)', m.group(1))
    return out


def route(rts, path):
    best = None
    for prefix, host in rts or []:
        if path == prefix or path.startswith(prefix.rstrip("/") + "/") or prefix == "/":
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, host)
    return best[1] if best else None


HANDNOTES = """## What breaks ccxt's default configuration through keyward

Requests ccxt makes on its own (market loading, account-mode detection) that keyward refuses today, so a
bot using ccxt with default options fails before its first order unless the option named is set:

- **binance**: `load_markets` with credentials set (keyward's key is the apiKey) calls
  `GET /sapi/v1/margin/allPairs` and `GET /sapi/v1/margin/isolated/allPairs` (options.fetchMargins, default
  true; `fetch_currencies` calls the first too): both unclassified. Default fetchMarkets.types also include
  inverse (`GET /dapi/v1/exchangeInfo`, dapi.binance.com, which keyward has no route for; harmless only if the
  bot leaves that host unproxied, as the README example does). tests/e2e sets fetchMargins false and
  types ['spot'] for this reason; the README's ccxt snippet does not.
- **bybit**: the first private call runs `is_unified_enabled`: `GET /v5/user/query-api` (keyward: **admin**)
  and `GET /v5/account/info` (read), with no try/except. Without the admin scope ccxt fails unless
  options.enableUnifiedAccount / enableUnifiedMargin are set (tests/e2e sets them).
- **kucoin**: `load_markets` with credentials calls `GET /api/v1/hf/accounts/opened` (unclassified; sets
  options.hf) and the margin lists `GET /api/v3/margin/symbols`, `GET /api/v1/isolated/symbols`
  (unclassified; params.marginables false skips them), and every private call first runs `is_uta_enabled`: `GET /api/ua/v1/account/mode`
  (unclassified; sets options.uta); neither is wrapped in try/except, so both must be set in options
  (hf true/false, uta false) or classified. Default fetchMarkets.types also load futures contracts from
  api-futures.kucoin.com (`GET /api/v1/contracts/active`), a host keyward does not route (it forwards /api to
  api.kucoin.com); every kucoin swap call in ccxt goes to that host.
- **bitget**: every call first runs `GET /api/v3/account/settings` (UTA detection, inside try/except: a
  refusal reads as a classic account, which is what keyward's v2 catalog serves; a UTA account would then be
  driven with v2 endpoints). Classic-mode `load_markets` calls `GET /api/v2/margin/currencies` (public,
  unclassified, not in try/except), so it fails through keyward; other unclassified classic calls below.
- **gate**: `GET /api/v4/account/detail` (unified detection) is in try/except, a refusal reads as classic.
  `load_markets` (default types spot, swap, future, option) calls `GET /api/v4/margin/currency_pairs`,
  `/api/v4/futures/btc/contracts`, `/api/v4/delivery/usdt/contracts`, `/api/v4/options/underlyings`: all
  unclassified, so load_markets fails unless fetchMarkets.types is narrowed (['spot', 'swap'] still asks
  futures/btc) and the margin pairs are classified.
  `edit_order` on spot uses **PATCH**, which keyward's Method cannot express (GET/POST/PUT/DELETE only).
- **coinbase**: `load_markets` → `fetch_currencies` calls `GET /v2/exchange-rates` (unclassified);
  `fetch_time` defaults to `GET /v2/time` (unclassified; options.fetchTime = 'v3PublicGetBrokerageTime' uses
  the catalogued `/api/v3/brokerage/time`).
- **htx**: no catalog; ccxt's linear swaps use the v5 unified endpoints on api.hbdm.vn (`/v5/trade/order`,
  ...), spot uses `/v1/...` on api.huobi.pro, and spot private calls first look up `GET /v1/account/accounts`.
- **okx, kraken, deribit**: every request the traced unified methods make is classified.

## Options that switch endpoints (beyond the account modes traced)

- binance: fetchMarkets.types, fetchMargins, portfolioMargin (papi/*), defaultType/subType; fetchOpenOrders
  without symbol raises unless options.warnOnFetchOpenOrdersWithoutSymbol is false.
- okx: createOrder ('privatePostTradeBatchOrders' default → POST /api/v5/trade/batch-orders;
  'privatePostTradeOrder' → /api/v5/trade/order), fetchLedger.method, fetchOpenOrders.method;
  set_margin_mode needs params.lever and then calls set-leverage.
- bybit: enableUnifiedAccount / enableUnifiedMargin (else detected), defaultType 'swap' linear.
- kucoin: hf, uta (else detected), versions (per-endpoint API version table), fetchMyTradesMethod
  ('privateGetFills' or 'privateGetLimitFills'; HF accounts use /api/v1/hf/fills).
- bitget: uta (else detected); gate: unifiedAccount (else detected).
- coinbase: fetchMarkets ('fetchMarketsV3'/'V2'), fetchTickers, fetchBalance ('v2PrivateGetAccounts' default or
  'v3PrivateGetBrokerageAccounts'), fetchTime ('v2PublicGetTime' default or 'v3PublicGetBrokerageTime').
- htx: fetchMarkets.types (spot, linear, inverse all on).

"""


def catalogs():
    out = {}
    for ex in EXCHANGES:
        path = os.path.join(SRC, ex + ".rs")
        if not os.path.exists(path):
            out[ex] = None
            continue
        text = open(path).read()
        m = re.search(r"static CATALOG: &\[Endpoint\] = &\[(.*?)\n\];", text, re.S)
        body = m.group(1)
        eps = re.findall(r'ep\(\s*(Get|Post|Put|Delete|Patch)\s*,\s*"([^"]+)"\s*,\s*(\w+)\s*\)', body)
        out[ex] = [(mth.upper(), p, cls) for mth, p, cls in eps]
    return out


def lookup(table, method, path):
    """keyward's catalog::lookup: exact first, then one-segment `{}` patterns."""
    if table is None:
        return None
    for m, p, c in table:
        if m == method and p == path:
            return c
    segs = path.split("/")
    for m, p, c in table:
        if m != method or "{}" not in p:
            continue
        ps = p.split("/")
        if len(ps) == len(segs) and all(a == "{}" and b or a == b for a, b in zip(ps, segs)):
            return c
    return None


def concrete(path):
    """A ccxt template path with its placeholders filled, as a request would have it."""
    return re.sub(r"\{[^}]+\}", "X1", path)


def fund_reason(path, unified, lookup_only=False):
    low = path.lower()
    words = [w for w in FUND_WORDS if w in low]
    extra = sorted({v for k, v in EXTRA_FUND.items() if k in low})
    reasons = words + [e for e in extra if e not in words]
    if unified in FUND_METHODS and not lookup_only:
        reasons.append("called by " + unified)
    return reasons


def build(trace):
    snap = json.load(open(os.path.join(OUT, "ccxt-endpoints.json")))["endpoints"]
    private_of = {(e["exchange"], e["method"], e["path"]): e["private"] for e in snap}
    data = {}
    for ex in EXCHANGES:
        per = collections.OrderedDict((u, collections.OrderedDict()) for u in UNIFIED)
        unsupported = collections.defaultdict(set)
        for mode, results in trace[ex].items():
            mode = MODE_NAMES.get((ex, mode), mode)
            for r in results:
                u = r["unified"]
                if u not in per:
                    continue
                if mode == "detect":
                    # The recorder's empty answer passes bitget's detection (UTA);
                    # keep only the detection request from this run.
                    r = dict(r, requests=[q for q in r["requests"] if (ex, q["path"]) in DETECTION], error=None)
                targets = [u] + (["load_markets"] if u in ("fetch_markets", "fetch_currencies") else [])
                if not r["requests"] and r["error"]:
                    unsupported[u].add("%s%s" % ((r["case"] + ": ") if r["case"] else "", r["error"][:110]))
                for q in r["requests"]:
                    # Keyed on the concrete path: one template can be two requests
                    # (gate's futures/usdt and futures/btc); ids are always 123 here.
                    key = (q["method"], q["actual"] or q["path"], q["host"])
                    for t in targets:
                        e = per[t].setdefault(key, {"method": q["method"], "path": q["path"], "host": q["host"],
                                                    "private": q["private"], "section": q["section"],
                                                    "cases": set(), "modes": set(), "examples": set()})
                        e["cases"].add(r["case"] or "-")
                        e["modes"].add(mode)
                        if q["actual"] and q["actual"] != q["path"]:
                            e["examples"].add(q["actual"])
        for u, items in MANUAL.get(ex, {}).items():
            for method, path, host, note in items:
                for t in [u] + (["load_markets"] if u in ("fetch_markets", "fetch_currencies") else []):
                    key = (method, path, host)
                    e = per[t].setdefault(key, {"method": method, "path": path, "host": host,
                                                "private": private_of.get((ex, method, path)),
                                                "section": None, "cases": set(), "modes": set(),
                                                "examples": set()})
                    e["manual"] = note
        all_modes = [MODE_NAMES.get((ex, m), m) for m in trace[ex] if MODE_NAMES.get((ex, m), m) != "detect"]
        out = collections.OrderedDict()
        for u, items in per.items():
            rows = []
            for key, e in items.items():
                notes = []
                if e.get("manual"):
                    notes.append(e["manual"])
                det = DETECTION.get((ex, e["path"]))
                if det:
                    notes.append(det)
                cases = sorted(e["cases"] - {"-"})
                if cases:
                    notes.append("cases: " + ", ".join(cases))
                modes = sorted(set(e["modes"]) - {"detect"})
                if modes and len(all_modes) > 1 and set(modes) != set(all_modes):
                    notes.append("only for account mode " + " / ".join(modes))
                row_modes = modes or all_modes
                if e["host"] and ex in ("kucoin", "htx", "binance", "kraken") and e["host"] not in (
                        "api.kucoin.com", "api.huobi.pro", "api.binance.com", "api.kraken.com"):
                    notes.append("host " + e["host"])
                row = {"method": e["method"], "path": e["path"], "note": "; ".join(notes)}
                if e["examples"]:
                    row["example"] = sorted(e["examples"])[0]
                row["host"] = e["host"]
                row["private"] = e["private"]
                row["modes"] = row_modes
                rows.append(row)
            if rows and unsupported.get(u):
                rows[0]["note"] = "; ".join(filter(None, [rows[0]["note"], "no request for " + " | ".join(
                    sorted(unsupported[u]))]))
            out[u] = rows
            if not rows:
                why = sorted(unsupported.get(u, []))
                out[u] = [{"method": None, "path": None,
                           "note": "no request: " + (" | ".join(why) if why else "not implemented")}]
        out["_modes"] = all_modes
        data[ex] = out
    return data


DEFAULT_HOSTS = ("api.binance.com", "www.okx.com", "api.bybit.com", "api.kraken.com", "api.kucoin.com",
                 "api.bitget.com", "api.gateio.ws", "www.deribit.com", "api.coinbase.com", "api.huobi.pro")


def classify_all(data, cats, rts):
    for ex, methods in data.items():
        for u, rows in methods.items():
            if u.startswith("_"):
                continue
            for row in rows:
                if not row["path"]:
                    continue
                path = row.get("example") or row["path"]
                path = concrete(path)
                row["keyward"] = lookup(cats.get(ex), row["method"], path)
                if ex in rts:
                    upstream = route(rts[ex], path)
                    if upstream != row.get("host"):
                        row["keyward_routes_to"] = upstream
                fr = fund_reason(row["path"], u, (ex, row["path"]) in DETECTION)
                if fr:
                    row["fund_mover"] = fr


def exact_only(table, method, path):
    return any(m == method and p == path for m, p, c in table or [])


def fullcheck(cats):
    snap = json.load(open(os.path.join(OUT, "ccxt-endpoints.json")))["endpoints"]
    offenders, counts = [], collections.Counter()
    global CAPTURES, CLASSIFIED
    CAPTURES, CLASSIFIED = [], collections.Counter()
    placeholder_offenders = 0
    for e in snap:
        ex = e["exchange"]
        counts[ex] += 1
        if cats.get(ex) is None:
            continue
        path = concrete(e["path"])
        cls = lookup(cats[ex], e["method"], path)
        if cls:
            CLASSIFIED[ex] += 1
            if "{" not in e["path"] and not exact_only(cats[ex], e["method"], path):
                CAPTURES.append((ex, e["method"], e["path"], cls))
        low = e["path"].lower()
        words = [w for w in FUND_WORDS if w in low]
        if words and cls in ("Public", "Read", "Trade", "Cancel"):
            offenders.append((ex, e["method"], e["path"], cls, words, "{" in e["path"]))
            placeholder_offenders += "{" in e["path"]
    return offenders, counts


def markdown(data, cats, offenders, counts):
    L = []
    w = L.append
    w("# ccxt unified methods → REST endpoints, against keyward's catalogs\n")
    w("ccxt %s. Made by `ccxt_unified.py` (dynamic trace of every unified call with a request recorder, "
      "synthetic BTC spot + linear-perpetual markets, default options; account modes that switch endpoints "
      "traced separately), `ccxt_unified_scan.py` (static call graph, to check the trace), and a few hand "
      "additions. Full data: `ccxt-unified.json`; full endpoint list: `ccxt-endpoints.json`.\n" % __import__("ccxt").__version__)
    w("Catalog comparison: the `ep(Method, \"path\", Class)` lines of each `CATALOG` in "
      "crates/keyward-exchanges/src/<exchange>.rs, matched like `catalog::lookup` (exact, then `{}` = one "
      "segment) on the concrete path ccxt sends (ids filled). HTX has no keyward catalog.\n")
    w(HANDNOTES)
    w("## Endpoints in ccxt's full list per exchange\n")
    w("| exchange | endpoints | private | classified by keyward's catalog |")
    w("|---|---|---|---|")
    snap = json.load(open(os.path.join(OUT, "ccxt-endpoints.json")))["endpoints"]
    priv = collections.Counter(e["exchange"] for e in snap if e["private"])
    for ex in EXCHANGES:
        w("| %s | %d | %d | %s |" % (ex, counts[ex], priv[ex], CLASSIFIED[ex] if cats.get(ex) else "no catalog"))
    w("")
    for ex in EXCHANGES:
        w("## %s\n" % ex)
        modes = []
        for m in data[ex]["_modes"]:
            if m not in modes:
                modes.append(m)
        if len(modes) > 1:
            w("Account modes traced: " + "; ".join("**%s** = %s" % (m, MODE_NOTES.get((ex, m), m)) for m in modes) + ".\n")
        groups = collections.OrderedDict()
        movers = collections.OrderedDict()
        for u, rows in data[ex].items():
            if u.startswith("_"):
                continue
            for r in rows:
                if not r["path"]:
                    continue
                key = (r["method"], r.get("example") or r["path"])
                if r.get("keyward") is None:
                    g = "all modes" if set(r["modes"]) == set(modes) else "only " + " / ".join(r["modes"])
                    groups.setdefault(g, collections.OrderedDict()).setdefault(key, {"u": [], "row": r})["u"].append(u)
                if r.get("fund_mover"):
                    movers.setdefault(key, {"u": [], "row": r})["u"].append(u)
        if cats.get(ex) is None:
            w("No keyward catalog (no htx.rs): every endpoint is unclassified.\n")
        total = len({k for g in groups.values() for k in g})
        w("**Called by the unified methods but not classified by keyward: %d**\n" % total)
        for g, items in sorted(groups.items(), key=lambda kv: kv[0] != "all modes"):
            if len(modes) > 1:
                w("*%s:*\n" % g)
            for (m, _), v in items.items():
                r = v["row"]
                p = r["path"]
                extra = []
                if r.get("example"):
                    extra.append("as sent: " + r["example"])
                if r.get("host") and r["host"] not in DEFAULT_HOSTS:
                    extra.append("host " + r["host"])
                det = DETECTION.get((ex, p))
                if det:
                    extra.append(det)
                if r["note"].startswith(("needs", "only with", "linear", "inverse")):
                    extra.append(r["note"].split(";")[0])
                w("- `%s %s` — %s%s" % (m, p, ", ".join(sorted(set(v["u"]), key=UNIFIED.index)),
                                        (" (" + "; ".join(extra) + ")") if extra else ""))
            w("")
        misrouted = collections.OrderedDict()
        for u, rows in data[ex].items():
            if u.startswith("_"):
                continue
            for r in rows:
                if r.get("path") and "keyward_routes_to" in r:
                    misrouted.setdefault((r["method"], r.get("example") or r["path"], r["host"],
                                          r["keyward_routes_to"], r.get("keyward")), []).append(u)
        if misrouted:
            w("**On a host keyward does not forward to** (keyward's base_urls send the path elsewhere, or "
              "nowhere; classified or not, these cannot work through keyward):\n")
            for (m, p, host, to, cls), us in misrouted.items():
                w("- `%s %s` on %s — %s — keyward: %s, forwarded to %s" % (
                    m, p, host, ", ".join(sorted(set(us), key=UNIFIED.index)), cls or "unclassified",
                    to or "nothing (no base_url prefix)"))
            w("")
        w("**Fund movers the unified methods call** (name words or withdraw/transfer):\n")
        for (m, _), v in movers.items():
            r = v["row"]
            w("- `%s %s` — %s — %s → keyward %s" % (m, r["path"], ", ".join(sorted(set(v["u"]), key=UNIFIED.index)),
                                                   ", ".join(r["fund_mover"]), r.get("keyward") or "**unclassified**"))
        w("")
    w("## Fund movers in ccxt's full list that keyward classes public/read/trade/cancel\n")
    w("Name words: %s. Paths with ccxt placeholders were matched with the placeholder filled "
      "(the Rust coverage test cannot parse `{...}` and counts those as unknown, so it would miss them).\n"
      % ", ".join(FUND_WORDS))
    if not offenders:
        w("None.\n")
    for ex, m, p, cls, words, ph in offenders:
        w("- %s `%s %s` → %s (words: %s)%s" % (ex, m, p, cls, ", ".join(words),
                                               " — has a placeholder" if ph else ""))
    w("")
    w("## Fixed ccxt paths that a keyward `{}` pattern captures\n")
    w("ccxt endpoints without placeholders that keyward classifies only through a one-segment `{}` pattern "
      "(meant for an id), i.e. a different endpoint that inherits the pattern's class:\n")
    for ex, m, p, cls in CAPTURES:
        w("- %s `%s %s` → %s" % (ex, m, p, cls))
    return "\n".join(L) + "\n"


def snapshot(data):
    """The committed form: per exchange, each distinct request with the unified
    methods and account modes that make it (what tests/coverage.rs reads)."""
    out = {}
    for ex, methods in data.items():
        merged = {}
        for name, calls in methods.items():
            for c in calls:
                if not c.get("method"):
                    continue  # ccxt makes no request for it
                e = merged.setdefault((c["method"], c["path"], c["host"]),
                                      {"method": c["method"], "path": c["path"], "host": c["host"],
                                       "unified": [], "modes": []})
                if name not in e["unified"]:
                    e["unified"].append(name)
                e["modes"] += [m for m in c.get("modes") or [] if m not in e["modes"]]
        for e in merged.values():
            e["unified"].sort()
            e["modes"].sort()
        out[ex] = sorted(merged.values(), key=lambda e: (e["path"], e["method"], e["host"]))
    about = ("REST endpoints ccxt %s's unified methods call (spot and linear swaps, default options, each account "
             "mode that switches endpoints): tools/ccxt_unified.py" % __import__("ccxt").__version__)
    return {"about": about, "exchanges": out}


def main():
    if "--cached" in sys.argv:
        trace = json.load(open(sys.argv[sys.argv.index("--cached") + 1]))
    else:
        import ccxt_unified_trace as T
        trace = {ex: {mode: T.trace(ex, opts, canned) for mode, opts, canned in T.MODES.get(ex, [("default", {}, {})])}
                 for ex in EXCHANGES}
    cats = catalogs()
    rts = routes()
    data = build(trace)
    classify_all(data, cats, rts)
    offenders, counts = fullcheck(cats)
    md = markdown(data, cats, offenders, counts)
    for ex in data:
        data[ex].pop("_modes", None)
    json.dump(snapshot(data), open(os.path.join(OUT, "ccxt-unified.json"), "w"), indent=0)
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    open(os.path.join(ROOT, "target", "ccxt-unified.md"), "w").write(md)


if __name__ == "__main__":
    main()
