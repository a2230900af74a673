"""keyward full and busy (issue 18), for bench/run:

* the signing proxy beside nginx as a plain reverse proxy, both in front of
  the same fast upstream (nginx answering fixed JSON): requests a second at
  32 connections, and what each adds to calling the upstream directly at 1;
* a server holding 100,000 and 1,000,000 access keys: key creation at 32
  connections (durable, audited), start to healthy, idle RSS, verification
  over HTTP and in process (the criterion bench);
* the audit log the other rows wrote: bytes per entry on disk and
  `keyward audit verify` throughput.

Stdlib only; nginx is Debian's (bench/run installs it).
"""
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request

from common import KEYWARD, PROCS, ROOT, WORK, free_port, http, lua, rss_mb, start, wrk

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STARTS = 3
KEY_COUNTS = [int(n) for n in os.environ.get("BENCH_KEYS", "100000,1000000").split(",") if n.strip() and int(n) > 0]
CRITERION = os.environ.get("BENCH_CRITERION", "1") != "0"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def wait_port(port, what):
    for _ in range(500):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=1).read()
            return
        except Exception as e:
            if hasattr(e, "code"):
                return
            time.sleep(0.01)
    raise RuntimeError("%s did not start" % what)


def nginx(name, servers):
    """An nginx in the foreground (workers: one per core) serving `servers`."""
    prefix = os.path.join(WORK, name)
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    open(conf, "w").write(
        "worker_processes auto;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/logs/error.log warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n  access_log off;\n  keepalive_requests 1000000;\n  keepalive_timeout 75s;\n%s\n}\n" % (prefix, prefix, servers))
    p = subprocess.Popen([NGINX, "-c", conf, "-p", prefix], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(p)
    return p


def stop(p):
    """Stops a server the way an operator would (SIGINT) and waits."""
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def keyward(name, extra=()):
    """A fresh keyward: its process, base URL, admin headers, data directory."""
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    data = os.path.join(WORK, name + "-data")
    out = open(os.path.join(WORK, name + ".out"), "w+")
    p, _ = start([KEYWARD, "server", "--data", data, "--listen", "127.0.0.1:%d" % port, "--log", "warn", *extra],
                 base + "/v1/sys/health", stdout=out)
    time.sleep(0.3)
    out.seek(0)
    admin = re.search(r"KEYWARD_TOKEN=(kw_\w+)", out.read()).group(1)
    return {"proc": p, "base": base, "port": port, "admin": {"Authorization": "Bearer " + admin}, "data": data}


def proxy(reps):
    """The signing proxy beside nginx's relay, same upstream, alternating runs."""
    up, relay = free_port(), free_port()
    nginx("upstream", "  server {\n    listen 127.0.0.1:%d reuseport;\n    default_type application/json;\n"
                      "    location / { return 200 '{\"ok\":true}'; }\n  }" % up)
    nginx("relay", "  upstream up { server 127.0.0.1:%d; keepalive 64; }\n  server {\n    listen 127.0.0.1:%d;\n"
                   "    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }\n  }" % (up, relay))
    wait_port(up, "nginx upstream")
    wait_port(relay, "nginx relay")
    kw = keyward("proxy", ["--allow-upstream", "127.0.0.1"])
    http("PUT", kw["base"] + "/v1/secrets/exchanges/bin",
         {"type": "binance", "data": {"api_key": "BK", "api_secret": "bs", "base_url": "http://127.0.0.1:%d" % up}}, kw["admin"])
    key = http("POST", kw["base"] + "/v1/keys",
               {"name": "proxy", "scopes": ["account:bin:read"], "allow_ips": ["127.0.0.1/32"]}, kw["admin"])["key"]
    script = lua("proxy", "GET", {"X-MBX-APIKEY": key}, None)
    # A signed private read (Binance account): authenticate, classify, sign, audit twice, forward.
    targets = [("upstream directly", "http://127.0.0.1:%d/api/v3/account" % up),
               ("nginx relay", "http://127.0.0.1:%d/api/v3/account" % relay),
               ("keyward proxy", kw["base"] + "/proxy/bin/api/v3/account")]
    time.sleep(1)
    runs = {}
    for conns in (32, 1):
        for _ in range(reps):
            for label, url in targets:
                r = wrk(url, script, conns)
                runs.setdefault(conns, {}).setdefault(label, []).append(r)
                log("%-24s c=%-3d %-24s %10.0f req/s  p50 %.3f ms  p99 %.3f ms%s" % (
                    "proxy", conns, label, r["rps"], r["p50_ms"], r["p99_ms"],
                    "  (%d non-2xx)" % r["non_2xx"] if r["non_2xx"] else ""))
    stop(kw["proc"])
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    out = {}
    for conns, by in runs.items():
        out[str(conns)] = {label: {"rps": med(rs, "rps"), "p50_ms": med(rs, "p50_ms"), "p99_ms": med(rs, "p99_ms"),
                                   "non_2xx": sum(r["non_2xx"] for r in rs), "runs": rs} for label, rs in by.items()}
    c32, c1 = out["32"], out["1"]
    out["ratio_c32"] = c32["keyward proxy"]["rps"] / c32["nginx relay"]["rps"]
    out["ratio_c32_runs"] = [k["rps"] / n["rps"] for k, n in zip(runs[32]["keyward proxy"], runs[32]["nginx relay"])]
    for label in ("nginx relay", "keyward proxy"):
        for q in ("p50", "p99"):
            out["c1_added_%s_us_%s" % (q, label.split()[0])] = 1000 * (c1[label][q + "_ms"] - c1["upstream directly"][q + "_ms"])
    return out


def wait_serving(base, verify_headers, body, t0):
    """Seconds from t0 until the server verifies a key (unsealed, keys loaded)."""
    while time.monotonic() - t0 < 300:
        try:
            http("POST", base + "/v1/keys/verify", body, verify_headers)
            return time.monotonic() - t0
        except Exception:
            time.sleep(0.005)
    raise RuntimeError("keyward did not serve within 300 s")


def keys_at(count):
    """A server filled with `count` access keys over the HTTP API, then
    restarted: creation rate, start to healthy, idle RSS, verify rate."""
    kw = keyward("keys-%d" % count)
    base, admin = kw["base"], kw["admin"]
    verifier = http("POST", base + "/v1/keys", {"name": "verifier", "scopes": ["key:verify:bench"]}, admin)["key"]
    user = http("POST", base + "/v1/keys", {"name": "user", "namespace": "bench", "permissions": ["orders.read"]}, admin)["key"]
    create = lua("create-%d" % count, "POST", admin, {"name": "bot", "namespace": "bench", "permissions": ["orders.read"]})
    first = wrk(base + "/v1/keys", create, 32, "10s")
    made = first["ok"] + 2
    while made < count:
        secs = max(2, int((count - made) / max(first["rps"], 500.0)) + 1)
        made += wrk(base + "/v1/keys", create, 32, "%ds" % secs)["ok"]
        log("keys: %d of %d created" % (made, count))
    stop(kw["proc"])
    verify_headers = {"Authorization": "Bearer " + verifier}
    # Start to healthy, three restarts (one start moves by a tenth on this
    # machine): the median is the row's; the last server stays up.
    starts = []
    for i in range(STARTS):
        t0 = time.monotonic()
        p = subprocess.Popen([KEYWARD, "server", "--data", kw["data"], "--listen", "127.0.0.1:%d" % kw["port"], "--log", "warn",
                              "--unseal-key-file", kw["data"] + ".unseal.key"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        PROCS.append(p)
        starts.append(wait_serving(base, verify_headers, {"key": user}, t0))
        if i < STARTS - 1:
            stop(p)
    started = statistics.median(starts)
    time.sleep(5)
    rss = rss_mb(p.pid)
    # The log of these creations names a new key in every entry: no string
    # repeats, the hard case for verification (each one is looked up). A
    # walk of 100,000 entries takes a tenth of a second, so one walk is at
    # the mercy of the machine's noise: the median of three.
    walks = sorted((verify_audit(base, admin) for _ in range(3)), key=lambda w: w["entries_per_s"])
    walk = walks[1]
    verify = wrk(base + "/v1/keys/verify", lua("verify-%d" % count, "POST", verify_headers, {"key": user}), 32)
    stop(p)
    result = {"keys": made, "create_rps": first["rps"], "create_non_2xx": first["non_2xx"], "start_ms": started * 1000,
              "start_ms_runs": [round(t * 1000) for t in starts],
              "rss_mb": rss, "verify_c32_rps": verify["rps"], "verify_c32_p50_ms": verify["p50_ms"],
              "audit_entries": walk["entries"], "audit_verify_entries_per_s": walk["entries_per_s"],
              "audit_verify_runs": [round(w["entries_per_s"]) for w in walks]}
    log("keys: %s" % json.dumps(result))
    shutil.rmtree(kw["data"], ignore_errors=True)
    return result


def in_process_verify():
    """The criterion bench's medians (ns) for verification at 100k and 1M keys."""
    if not CRITERION:
        return {}
    out = subprocess.run(["cargo", "bench", "-q", "-p", "keyward-server", "--bench", "verify", "--", "verify_(100k|1m)_keys"],
                         cwd=ROOT, capture_output=True, text=True).stdout
    found = {}
    for name, mid, unit in re.findall(r"(verify_\w+_keys)\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", out):
        found[name] = float(mid) * {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6}[unit]
    return found


def keys():
    rows = [keys_at(n) for n in KEY_COUNTS]
    ns = in_process_verify()
    for r in rows:
        name = "verify_%s_keys" % ("1m" if r["keys"] >= 1_000_000 else "100k")
        if r["keys"] >= 100_000 and name in ns:
            r["verify_in_process_ns"] = ns[name]
    return rows


def verify_audit(base, admin):
    """`keyward audit verify` (its HTTP call) over the whole log: entries, seconds, entries/s."""
    t0 = time.monotonic()
    req = urllib.request.Request(base + "/v1/audit/verify", headers=admin)
    report = json.loads(urllib.request.urlopen(req, timeout=600).read())
    wall = time.monotonic() - t0
    entries = report.get("entries", 0)
    return {"entries": entries, "s": wall, "entries_per_s": entries / wall if wall else 0, "ok": report.get("ok")}


def audit(kw):
    """`keyward audit verify` over everything the other rows wrote, then the
    bytes each entry takes in the stopped server's database."""
    walk = verify_audit(kw["base"], kw["admin"])
    stop(kw["proc"])
    db = sqlite3.connect(os.path.join(kw["data"], "keyward.db"))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    entries = db.execute("SELECT count(*) FROM audit_entries").fetchone()[0]
    try:
        table = db.execute("SELECT sum(pgsize) FROM dbstat WHERE name = 'audit_entries'").fetchone()[0]
    except sqlite3.Error:
        table = None  # this Python's SQLite has no dbstat
    pages, size = db.execute("PRAGMA page_count").fetchone()[0], db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    return {"entries": entries, "verified": walk["entries"], "verify_s": walk["s"],
            "verify_entries_per_s": walk["entries_per_s"],
            "table_bytes_per_entry": table / entries if table and entries else None,
            "db_bytes_per_entry": pages * size / entries if entries else None}


def render(s):
    lines = []
    p = s.get("proxy")
    if p:
        fmt = lambda x: "%s req/s (p50 %.3f / p99 %.3f ms)" % ("{:,.0f}".format(x["rps"]), x["p50_ms"], x["p99_ms"])
        lines += ["", "The signing proxy (a signed Binance account read: authenticate, classify, sign, two audit entries, forward) "
                  "beside nginx as a plain reverse proxy, same upstream (nginx answering fixed JSON), same run:", "",
                  "| conns | upstream directly | nginx relay | keyward proxy | keyward / nginx |", "|---|---|---|---|---|"]
        for c in ("32", "1"):
            row = p[c]
            ratio = "%.2f×" % (row["keyward proxy"]["rps"] / row["nginx relay"]["rps"])
            lines.append("| %s | %s | %s | %s | %s |" % (c, fmt(row["upstream directly"]), fmt(row["nginx relay"]), fmt(row["keyward proxy"]), ratio))
        lines.append("")
        lines.append("At one connection the proxy adds %.0f µs at p50 and %.0f µs at p99 to calling the upstream directly "
                     "(nginx's relay adds %.0f and %.0f)." % (p["c1_added_p50_us_keyward"], p["c1_added_p99_us_keyward"],
                                                              p["c1_added_p50_us_nginx"], p["c1_added_p99_us_nginx"]))
    k = s.get("keys")
    if k:
        lines += ["", "| access keys | creation, 32 conns | start to healthy (median of 3 restarts; each) | idle RSS | verify over HTTP, 32 conns | verify in process |",
                  "|---|---|---|---|---|---|"]
        for r in k:
            ns = r.get("verify_in_process_ns")
            each = ", ".join("{:,}".format(t) for t in r.get("start_ms_runs", []))
            lines.append("| {:,} | {:,.0f} keys/s | {:,.0f} ms{} | {:.0f} MB | {:,.0f} req/s | {} |".format(
                r["keys"], r["create_rps"], r["start_ms"], " (%s)" % each if each else "", r["rss_mb"], r["verify_c32_rps"],
                "%.0f ns" % ns if ns else "–"))
        walks = ["{:,} entries at {:,.0f} entries/s{}".format(
                     r["audit_entries"], r["audit_verify_entries_per_s"],
                     " (median of 3 walks; %s)" % ", ".join("{:,}".format(x) for x in r["audit_verify_runs"]) if r.get("audit_verify_runs") else "")
                 for r in k if r.get("audit_entries")]
        if walks:
            lines += ["", "`keyward audit verify` over the log of those creations, where every entry names a new key "
                      "(no string repeats, each is looked up): " + "; ".join(walks) + "."]
    a = s.get("audit")
    if a:
        table = "%.1f bytes an entry in its table, " % a["table_bytes_per_entry"] if a.get("table_bytes_per_entry") else ""
        lines += ["", "Audit log, after the rows above: {:,} entries, {}{:.1f} bytes an entry for the whole database; "
                  "`keyward audit verify` checked them at {:,.0f} entries/s ({:.2f} s).".format(
                      a["entries"], table, a["db_bytes_per_entry"], a["verify_entries_per_s"], a["verify_s"])]
    return lines
