#!/usr/bin/env python3
"""Audit bytes an entry and `keyward audit verify` throughput on bench/run's
mix, without the rest of bench/run: a fresh server takes verify, read, sign
(a Binance order) and durable write load at 32 and then 1 connections, is
verified over HTTP, stopped, and its audit table measured with SQLite's
dbstat.

    python3 bench/audit_mix.py [BINARY] [DURATION]    # default target/release/keyward 3s
"""
import json
import os
import sqlite3
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import run  # noqa: E402

PAYLOAD = ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01000000&price=50000.00000000"
           "&newClientOrderId=bench-0123456789abcdef&recvWindow=5000&x=12")[:150]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else common.KEYWARD
    duration = sys.argv[2] if len(sys.argv) > 2 else "3s"
    kw = run.setup_keyward(binary, "audit-mix")
    k = kw["keys"]
    bearer = lambda name: {"Authorization": "Bearer " + k[name]}
    loads = [
        ("verify", kw["base"] + "/v1/keys/verify", common.lua("mix-verify", "POST", bearer("verifier"), {"key": k["platform"]})),
        ("read", kw["base"] + "/v1/secrets/bench", common.lua("mix-read", "GET", bearer("reader"), None)),
        ("sign", kw["base"] + "/v1/sign/bench",
         common.lua("mix-sign", "POST", bearer("signer"), {"method": "POST", "path": "/api/v3/order", "body": PAYLOAD})),
        ("write", kw["base"] + "/v1/secrets/bench", common.lua("mix-write", "PUT", bearer("writer"), {"data": {"value": "y" * 32}})),
    ]
    for conns in (32, 1):
        for name, url, script in loads:
            r = common.wrk(url, script, conns, duration)
            print("c%-2d %-6s %8.0f req/s" % (conns, name, r["rps"]), file=sys.stderr)
    t0 = time.monotonic()
    req = urllib.request.Request(kw["base"] + "/v1/audit/verify", headers=kw["admin"], method="POST")
    report = json.loads(urllib.request.urlopen(req, timeout=600).read())
    wall = time.monotonic() - t0
    kw["proc"].send_signal(2)
    kw["proc"].wait()
    db = sqlite3.connect(os.path.join(kw["data"], "keyward.db"))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    entries = db.execute("SELECT count(*) FROM audit_entries").fetchone()[0]
    table = db.execute("SELECT sum(pgsize) FROM dbstat WHERE name = 'audit_entries'").fetchone()[0]
    actions = db.execute(
        "SELECT (SELECT value FROM audit_strings WHERE id = action), count(*), avg(length(detail)), avg(length(hash))"
        " FROM audit_entries GROUP BY action ORDER BY 2 DESC").fetchall()
    print(json.dumps({
        "entries": entries, "verified_ok": report["ok"],
        "table_bytes_per_entry": round(table / entries, 1),
        "verify_entries_per_s": round(report["entries"] / wall),
        "by_action": {a: {"entries": n, "detail_bytes": round(d, 1), "hash_bytes": round(h, 1)} for a, n, d, h in actions},
    }, indent=1))


if __name__ == "__main__":
    main()
