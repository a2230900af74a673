#!/usr/bin/env python3
"""keyward on SQLite and on PostgreSQL, side by side in one run.

Started by bench/postgres (which builds keyward in release mode and installs
wrk and Debian's postgresql if missing). Starts a throw-away PostgreSQL on a
loopback port (fsync on), one keyward node on SQLite and two on PostgreSQL,
and measures with wrk, alternating runs: verify, secret read, durable secret
write and HMAC sign, at 1 and 32 connections; then how long a revocation
made on node A takes to be refused on node B. Prints a markdown table and
rewrites the README's PostgreSQL table between its markers.
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as b  # noqa: E402  (the OpenBao bench's helpers: wrk, lua, start, http)
import scale  # noqa: E402  (verify_audit)

PG_BIN = sorted(d for d in (os.path.join("/usr/lib/postgresql", v, "bin") for v in os.listdir("/usr/lib/postgresql"))
                if os.path.exists(os.path.join(d, "pg_ctl")))[-1]
AS_PG = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def start_postgres():
    d = os.path.join(b.WORK, "pg")
    os.mkdir(d)
    if AS_PG:
        shutil.chown(b.WORK, "postgres")
        shutil.chown(d, "postgres")
    subprocess.run(AS_PG + [PG_BIN + "/initdb", "-D", d + "/data", "-A", "trust", "-U", "keyward"], check=True, capture_output=True)
    port = b.free_port()
    subprocess.run(AS_PG + [PG_BIN + "/pg_ctl", "-D", d + "/data", "-l", d + "/log", "-w", "-o",
                            "-p %d -k %s -c listen_addresses=127.0.0.1" % (port, d), "start"], check=True, capture_output=True)
    url = "postgres://keyward@127.0.0.1:%d/postgres" % port
    subprocess.run(["psql", url, "-qAtc", "CREATE DATABASE keyward"], check=True)
    return d, url.replace("/postgres", "/keyward")


def stop_postgres(d):
    subprocess.run(AS_PG + [PG_BIN + "/pg_ctl", "-D", d + "/data", "-m", "fast", "-w", "stop"], capture_output=True)


def node_b(url, key_file):
    port = b.free_port()
    base = "http://127.0.0.1:%d" % port
    env = dict(os.environ, KEYWARD_DATABASE_URL=url)
    b.start([b.KEYWARD, "server", "--data", os.path.join(b.WORK, "kw-pg-b-data"), "--unseal-key-file", key_file,
             "--listen", "127.0.0.1:%d" % port, "--log", "warn"], base + "/v1/sys/health", env=env)
    return base


def status(method, url, token):
    req = urllib.request.Request(url, method=method, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def propagation(a, b_base, admin, n=20):
    """Milliseconds from a revocation's answer on A until B refuses the key.

    Each key is first seen on B through the admin key (no failed
    authentication, which the throttle would slow down), and the revocation
    comes a moment after, as one change would: B rereads keys at most every
    100 ms, so changes in quick succession are put in force together.
    """
    h = {"Authorization": "Bearer " + admin}
    out = []
    for i in range(n):
        k = b.http("POST", a + "/v1/keys", {"name": "p%d" % i, "scopes": ["secret:read:bench"]}, h)
        while status("GET", b_base + "/v1/keys/" + k["id"], admin) != 200:
            time.sleep(0.005)
        time.sleep(0.2)
        b.http("POST", a + "/v1/keys/%s/revoke" % k["id"], None, h)
        t0 = time.monotonic()
        while status("GET", b_base + "/v1/secrets/bench", k["key"]) != 401:
            time.sleep(0.001)
        out.append((time.monotonic() - t0) * 1000)
    return out


def main():
    payload = ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01000000&price=50000.00000000"
               "&newClientOrderId=bench-0123456789abcdef&recvWindow=5000&x=12")[:150]
    pg_dir, url = start_postgres()
    try:
        sq = b.setup_keyward(name="kw-sqlite")
        pg = b.setup_keyward(name="kw-pg", env=dict(os.environ, KEYWARD_DATABASE_URL=url))
        cases = {}
        for label, kw in (("SQLite", sq), ("PostgreSQL", pg)):
            k = kw["keys"]
            cases[label] = {
                "verify": (kw["base"] + "/v1/keys/verify", b.lua(label + "-verify", "POST", {"Authorization": "Bearer " + k["verifier"]}, {"key": k["platform"]})),
                "secret read": (kw["base"] + "/v1/secrets/bench", b.lua(label + "-read", "GET", {"Authorization": "Bearer " + k["reader"]}, None)),
                "secret write (durable)": (kw["base"] + "/v1/secrets/bench", b.lua(label + "-write", "PUT", {"Authorization": "Bearer " + k["writer"]}, {"data": {"value": "y" * 32}})),
                "HMAC sign": (kw["base"] + "/v1/sign/bench", b.lua(label + "-sign", "POST", {"Authorization": "Bearer " + k["signer"]}, {"method": "POST", "path": "/api/v3/order", "body": payload})),
            }
        rows = []
        for row in cases["SQLite"]:
            for conns in b.CONNS:
                runs = {"SQLite": [], "PostgreSQL": []}
                for _ in range(b.REPS):
                    for label in runs:
                        runs[label].append(b.wrk(*cases[label][row], conns))
                med = {label: {m: statistics.median(r[m] for r in rs) for m in ("rps", "p50_ms", "p99_ms")} for label, rs in runs.items()}
                rows.append((row, conns, med["SQLite"], med["PostgreSQL"]))
                print(row, conns, med, file=sys.stderr)
        # `keyward audit verify` over everything the rows wrote, alternating.
        walks = {"SQLite": [], "PostgreSQL": []}
        for _ in range(b.REPS):
            for label, kw in (("SQLite", sq), ("PostgreSQL", pg)):
                walks[label].append(scale.verify_audit(kw["base"], kw["admin"]))
        print("audit verify", walks, file=sys.stderr)
        admin = re.search(r"KEYWARD_TOKEN=(kw_\w+)", open(os.path.join(b.WORK, "kw-pg.out")).read()).group(1)
        nb = node_b(url, os.path.join(b.WORK, "kw-pg-data.unseal.key"))
        lat = propagation(pg["base"], nb, admin)
        return render(rows, lat, walks)
    finally:
        for p in b.PROCS:
            p.kill()
        stop_postgres(pg_dir)


def render(rows, lat, walks):
    fmt = lambda x: "%s req/s (p50 %.2f / p99 %.2f ms)" % ("{:,.0f}".format(x["rps"]), x["p50_ms"], x["p99_ms"])
    lines = ["Measured by `bench/postgres` on %s, %s: one node on SQLite beside one on a local PostgreSQL %s "
             "(fsync on), medians of %d alternating %s runs." % (time.strftime("%Y-%m-%d"), b.platform.machine() + ", %d cores" % os.cpu_count(),
                                                               PG_BIN.split("/")[-2], b.REPS, b.DURATION), "",
             "| row | conns | SQLite | PostgreSQL | PostgreSQL / SQLite |", "|---|---|---|---|---|"]
    for row, conns, s, p in rows:
        lines.append("| %s | %d | %s | %s | %.2f× |" % (row, conns, fmt(s), fmt(p), p["rps"] / s["rps"]))
    lines.append("")
    walk = lambda label: "%s entries at %s entries/s (%s)%s" % (
        "{:,}".format(walks[label][-1]["entries"]), "{:,.0f}".format(statistics.median(w["entries_per_s"] for w in walks[label])),
        ", ".join("{:,.0f}".format(w["entries_per_s"]) for w in walks[label]),
        "" if all(w["ok"] for w in walks[label]) else ", NOT INTACT")
    lines.append("`keyward audit verify` over what the rows above wrote, median of %d alternating walks (each): SQLite %s; PostgreSQL %s." % (
        b.REPS, walk("SQLite"), walk("PostgreSQL")))
    lines.append("")
    lines.append("A revocation on node A refused on node B after: median %.1f ms, slowest %.1f ms (%d revocations)." % (
        statistics.median(lat), max(lat), len(lat)))
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        table = main()
    finally:
        shutil.rmtree(b.WORK, ignore_errors=True)
    print(table)
    readme = os.path.join(b.ROOT, "README.md")
    text = open(readme).read()
    new = re.sub(r"(<!-- bench-postgres:begin -->\n).*?(\n<!-- bench-postgres:end -->)", lambda m: m.group(1) + table + m.group(2), text, flags=re.S)
    if new != text:
        open(readme, "w").write(new)
