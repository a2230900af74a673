#!/usr/bin/env python3
"""Drives a running Freqtrade (LIVE, through keyward) via its REST API, then
checks what reached the fake exchange and what keyward decided.

Run by crates/keyward/tests/it/freqtrade.rs with Freqtrade's own Python and:
FT_URL, FT_PID, BOT_KEY (the trading key, Freqtrade's exchange.key),
BEARER_KEY (the public-only key in ccxt_config's headers), FAKE_URL, WORK,
CONFIGS (Freqtrade's --config files, ':'-separated), KW (keyward binary),
KEYWARD_ADDR and KEYWARD_TOKEN (admin, to read the audit log).
Prints each step and check; writes WORK/summary.json; exits 1 on a failure.
"""
import collections
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ccxt
import requests
from freqtrade.configuration.load_config import load_config_file
from freqtrade.misc import deep_merge_dicts

FT = os.environ["FT_URL"] + "/api/v1"
AUTH = ("ft", "ft-test-password")  # config.json api_server
BOT_KEY = os.environ["BOT_KEY"]
BEARER_KEY = os.environ["BEARER_KEY"]
CONFIGS = os.environ["CONFIGS"].split(":")
FAKE = os.environ["FAKE_URL"]
WORK = Path(os.environ["WORK"])
FAILED = []
SUMMARY = {"checks": {}}


def check(name, ok, detail=""):
    SUMMARY["checks"][name] = bool(ok)
    print("   %s %s%s" % ("ok  " if ok else "FAIL", name, (": " + str(detail)) if detail and not ok else ""))
    if not ok:
        FAILED.append(name)


def api(method, path, body=None, ok=(200,)):
    r = requests.request(method, FT + path, auth=AUTH, json=body, timeout=30)
    if r.status_code not in ok:
        raise RuntimeError("%s %s -> %s %s" % (method, path, r.status_code, r.text[:300]))
    return r.json()


def wait(what, fn, seconds=90):
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (requests.ConnectionError, requests.Timeout) as e:
            last = e
        time.sleep(0.5)
    raise RuntimeError("timed out waiting for %s (last: %s)" % (what, last))


def fake(path):
    return requests.get(FAKE + path, timeout=10).json()


def open_trade():
    """The open trade on BTC/USDT whose entry order is open, if any."""
    for t in api("GET", "/status"):
        if t["pair"] == "BTC/USDT" and t.get("has_open_orders"):
            return t
    return None


T0 = time.time()


def step(msg):
    print("-- [%5.1f s] %s" % (time.time() - T0, msg), flush=True)


def drive():
    t0 = time.time()
    step("waiting for Freqtrade's REST API and its first entry (the strategy enters at once)")
    wait("the REST API", lambda: api("GET", "/ping").get("status") == "pong", 60)
    SUMMARY["api_up_s"] = round(time.time() - t0, 1)
    t1 = wait("the strategy's entry order", open_trade, 90)
    SUMMARY["first_order_s"] = round(time.time() - t0, 1)
    o1 = t1["orders"][0]
    print("   trade %s: %s %s BTC/USDT @ %s, order %s %s" % (
        t1["trade_id"], o1["ft_order_side"], o1["amount"], o1["safe_price"], o1["order_id"], o1["status"]))
    check("strategy entry placed a limit order that rests (NEW)", o1["status"] in ("open", "NEW"), o1)

    step("locking BTC/USDT for an hour, so the strategy does not enter again by itself")
    until = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    api("POST", "/locks", [{"pair": "BTC/USDT", "until": until, "reason": "keyward test"}])

    step("cancelling trade %s's open order: DELETE /api/v1/trades/%s/open-order" % (t1["trade_id"], t1["trade_id"]))
    # An entry cancelled before any fill deletes the trade, so Freqtrade then
    # answers that the trade is gone (502): the cancel itself went through.
    api("DELETE", "/trades/%s/open-order" % t1["trade_id"], ok=(200, 502))
    wait("trade %s gone" % t1["trade_id"], lambda: open_trade() is None, 20)

    step("forcing an entry: POST /api/v1/forceenter BTC/USDT at 25000")
    t2 = api("POST", "/forceenter", {"pair": "BTC/USDT", "price": 25000})
    check("forceenter opened a trade", "trade_id" in t2, t2)
    t2 = wait("the forced entry's open order", open_trade, 20)
    o2 = t2["orders"][0]
    print("   trade %s: %s %s BTC/USDT @ %s, order %s %s" % (
        t2["trade_id"], o2["ft_order_side"], o2["amount"], o2["safe_price"], o2["order_id"], o2["status"]))
    step("cancelling it: DELETE /api/v1/trades/%s/open-order" % t2["trade_id"])
    api("DELETE", "/trades/%s/open-order" % t2["trade_id"], ok=(200, 502))
    wait("trade %s gone" % t2["trade_id"], lambda: open_trade() is None, 20)

    step("reading the balance Freqtrade reports: GET /api/v1/balance")
    bal = api("GET", "/balance")
    cur = {c["currency"]: c["balance"] for c in bal["currencies"]}
    print("   " + ", ".join("%s %s" % kv for kv in sorted(cur.items())))
    SUMMARY["balance"] = cur
    check("Freqtrade reports the exchange balance (USDT 10000, BTC 1.5)", cur.get("USDT") == 10000.0
          and cur.get("BTC") == 1.5, cur)

    # Freqtrade logs its ccxt_config (the bearer): the trading key must be in no log.
    cfg = requests.get(FT + "/show_config", auth=AUTH, timeout=10).text
    logs = requests.get(FT + "/logs", auth=AUTH, timeout=10).text
    log_file = (WORK / "freqtrade.log").read_text()
    check("the trading key is in no Freqtrade log or API answer",
          not any(BOT_KEY in t for t in (cfg, logs, log_file)))
    SUMMARY["bearer_in_freqtrade_log"] = BEARER_KEY in log_file

    step("stopping the bot: POST /api/v1/stop")
    api("POST", "/stop")
    time.sleep(1)
    pid = int(os.environ["FT_PID"])
    os.kill(pid, signal.SIGTERM)  # Freqtrade treats it as Ctrl-C (bash ignores SIGINT in background jobs)
    for _ in range(150):
        if not running(pid):
            break
        time.sleep(0.2)
    else:
        check("Freqtrade exited after SIGTERM", False, "still running after 30 s")
    SUMMARY["freqtrade_s"] = round(time.time() - t0, 1)


def running(pid):
    """True while the process runs (an exited one its parent has not reaped yet is a zombie: done)."""
    try:
        return Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def withdraw():
    """A withdrawal with the same keyward key and Freqtrade's own ccxt settings."""
    step("a withdrawal with the same key: ccxt.binance(Freqtrade's ccxt_config).withdraw(BTC, 0.1, ...)")
    conf = {}
    for path in CONFIGS:
        conf = deep_merge_dicts(load_config_file(path), conf)
    exc = conf["exchange"]
    ex = ccxt.binance(dict(exc["ccxt_config"], apiKey=exc["key"], secret=exc["secret"], timeout=10000))
    before_log, before_audit = len(fake("/__log")), len(audit())
    try:
        ex.withdraw("BTC", 0.1, "bc1qexampleaddressxxxxxxxxxxxxxxxxxxxxxx", params={"network": "BTC"})
        answer = "allowed"
    except ccxt.BaseError as e:
        answer = str(e)
    print("   " + answer[answer.find("/sapi"):][:230] if "/sapi" in answer else "   " + answer[:230])
    SUMMARY["withdraw"] = answer[:400]
    check("keyward refused the withdrawal: HTTP 403 scope_missing",
          "403" in answer and '"code":"scope_missing"' in answer, answer[:300])
    # A routine entry is written with its batch, after the answer: wait
    # for it a moment (a busy machine, a remote database), never forever.
    deadline = time.monotonic() + 5
    while True:
        rows = audit()[before_audit:]
        denied = [(r["target"], r["class"], r["code"]) for r in rows if r["decision"] == "deny"]
        if denied or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    print("   keyward audit: %s" % denied)
    check("the audit log has the refusal (withdraw class, scope_missing)",
          denied == [("bin POST /sapi/v1/capital/withdraw/apply", "withdraw", "scope_missing")], denied)
    new = fake("/__log")[before_log:]
    check("the withdrawal never reached the exchange",
          not any("withdraw" in e["path"].lower() for e in new), [e["path"] for e in new])


def records():
    step("what reached the fake exchange (GET /__log): signatures checked by Python's hmac there")
    log = fake("/__log")
    (WORK / "exchange-log.json").write_text(json.dumps(log, indent=1))
    counts = collections.Counter((e["method"], e["path"]) for e in log)
    signed = [e for e in log if "signature=" in (e["query"] + e["body"])]
    for (m, p), n in sorted(counts.items(), key=lambda kv: kv[0][1]):
        st = collections.Counter(e.get("status") for e in log if (e["method"], e["path"]) == (m, p))
        print("   %3d x %-6s %-34s %s" % (n, m, p, dict(st)))
    SUMMARY["exchange_requests"] = {"%s %s" % k: v for k, v in sorted(counts.items())}
    check("every signed request arrived with a valid signature (answered 200)",
          signed and all(e.get("status") == 200 for e in signed),
          [(e["method"], e["path"], e.get("status"), e.get("error")) for e in signed if e.get("status") != 200])
    check("signed with the real key (X-MBX-APIKEY), never the keyward key",
          all(e["headers"].get("x-mbx-apikey") == "BINANCE-REAL-KEY" for e in signed)
          and not any(BOT_KEY in json.dumps(e) for e in log))
    check("2 x POST /api/v3/order reached the exchange", counts[("POST", "/api/v3/order")] == 2)
    check("2 x DELETE /api/v3/order reached the exchange", counts[("DELETE", "/api/v3/order")] == 2)
    check("GET /api/v3/account (balance) reached the exchange", counts[("GET", "/api/v3/account")] >= 1)
    posted = [dict(kv.split("=", 1) for kv in e["body"].split("&")) for e in log
              if (e["method"], e["path"]) == ("POST", "/api/v3/order")]
    SUMMARY["orders_posted"] = [{k: p.get(k) for k in ("symbol", "side", "type", "quantity", "price", "timeInForce")}
                                for p in posted]
    state = fake("/__state")
    check("no order left open on the exchange", not [o for o in state["open"].get("binance", [])], state["open"])

    step("what keyward decided for Freqtrade (keyward audit export)")
    proxy = audit()
    SUMMARY["audit_rows_freqtrade"] = len(proxy)
    by = collections.defaultdict(lambda: {"class": "", "allow": 0, "deny": collections.Counter(),
                                          "outcome": collections.Counter()})
    for r in proxy:
        row = by[r["target"]]
        row["class"] = r["class"] or row["class"]
        if r["decision"] == "allow":
            row["allow"] += 1
        elif r["decision"] == "outcome":
            row["outcome"][r["code"]] += 1
        else:
            row["deny"][r["code"]] += 1
    for target, row in sorted(by.items()):
        print("   %-40s %-7s allowed %d, exchange answered %s%s" % (
            target[4:], row["class"] or "-", row["allow"], dict(row["outcome"]),
            (", refused " + str(dict(row["deny"]))) if row["deny"] else ""))
    SUMMARY["keyward_decisions"] = {t[4:]: {"class": r["class"], "allowed": r["allow"], "outcome": dict(r["outcome"]),
                                            "refused": dict(r["deny"])} for t, r in sorted(by.items())}
    refused = sorted("%s %s" % (t[4:], code) for t, r in by.items() for code in r["deny"])
    SUMMARY["refused"] = refused
    check("keyward refused nothing Freqtrade asked for (no endpoint_unknown)", not refused, refused)


def audit():
    out = subprocess.run([os.environ["KW"], "audit", "export"], capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [r for r in rows if r["action"].startswith("proxy.")]


def main():
    try:
        drive()
        records()
        withdraw()
    except Exception as e:  # a step that could not even run
        FAILED.append("%s: %s" % (type(e).__name__, e))
        print("   FAIL %s: %s" % (type(e).__name__, e))
    SUMMARY["failed"] = FAILED
    (WORK / "summary.json").write_text(json.dumps(SUMMARY, indent=2))
    print("-- %d checks, %d failed; summary in %s" % (len(SUMMARY["checks"]), len(FAILED), WORK / "summary.json"),
          flush=True)
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
