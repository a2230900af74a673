#!/usr/bin/env python3
"""keyward side by side with OpenBao, in one run on this machine.

Started by bench/run (which builds and installs what is needed). Drives both
servers with wrk, same connections and duration, alternating runs, for:
verify a key (keyward POST /v1/keys/verify vs OpenBao lookup-self), read a
small secret (vs KV v2 read), write one (vs KV v2 write on durable single-node
Raft), HMAC-SHA256 a 150-byte payload (keyward /v1/sign for a Binance-type
account vs transit hmac), and a bare axum handler (the HTTP stack's limit), run for
run beside verify.
OpenBao runs without and with a file audit device; keyward's audit is always
on. Also idle RSS and time from process start until health answers.

BENCH_BASELINE=/path/to/an/older/keyward adds that binary, set up the same
way, to every keyward row ("keyward baseline"): a before/after of a change
in the same run.

Then keyward full and busy (bench/scale.py): the audit log those rows wrote
(bytes an entry, verification throughput), the signing proxy beside nginx's
plain relay, and servers holding 100,000 and 1,000,000 access keys
(BENCH_KEYS=100000 for a shorter run, BENCH_CRITERION=0 to skip the
in-process verify bench).

Prints a markdown table, writes bench/results/latest.json, and rewrites the
README's Performance table between its bench markers. Stdlib only.
"""
import base64
import datetime
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import DURATION, KEYWARD, PROCS, ROOT, WORK, free_port, http, lua, rss_mb, start, wrk
import scale

BARE = os.path.join(ROOT, "target/release/bench-bare-axum")
BAO = os.path.join(ROOT, "bench/.venv/bin/bao")
BASELINE = os.environ.get("BENCH_BASELINE")
REPS = int(os.environ.get("BENCH_REPS", "3"))
CONNS = [1, 32]


def setup_keyward(binary=KEYWARD, name="kw", env=None):
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    out = open(os.path.join(WORK, name + ".out"), "w+")
    p, startup = start([binary, "server", "--data", os.path.join(WORK, name + "-data"), "--listen", "127.0.0.1:%d" % port, "--log", "warn"],
                       base + "/v1/sys/health", env=env, stdout=out)
    time.sleep(0.3)
    out.seek(0)
    admin = re.search(r"KEYWARD_TOKEN=(kw_\w+)", out.read()).group(1)
    h = {"Authorization": "Bearer " + admin}
    key = lambda body: http("POST", base + "/v1/keys", body, h)["key"]
    http("PUT", base + "/v1/secrets/bench", {"data": {"value": "x" * 32}}, h)
    http("PUT", base + "/v1/secrets/exchanges/bench", {"type": "binance", "data": {"api_key": "K", "api_secret": "S" * 64}}, h)
    keys = {
        "verifier": key({"name": "verifier", "scopes": ["key:verify:bench"]}),
        "platform": key({"name": "user", "namespace": "bench", "permissions": ["orders.read"]}),
        "reader": key({"name": "reader", "scopes": ["secret:read:bench"]}),
        "writer": key({"name": "writer", "scopes": ["secret:write:bench"]}),
        "signer": key({"name": "signer", "scopes": ["account:bench:*"], "allow_ips": ["127.0.0.1/32"]}),
    }
    time.sleep(2)
    return {"proc": p, "base": base, "keys": keys, "startup_s": startup, "rss_mb": rss_mb(p.pid), "admin": h,
            "data": os.path.join(WORK, name + "-data")}


def bao(env, *args):
    return subprocess.run([BAO] + list(args), capture_output=True, text=True, env=env, check=True).stdout


def setup_openbao_dev(audit=False):
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    env = dict(os.environ, BAO_ADDR=base, BAO_TOKEN="root", HOME=WORK)
    cmd = [BAO, "server", "-dev", "-dev-root-token-id=root", "-dev-listen-address=127.0.0.1:%d" % port]
    if audit:
        # OpenBao takes audit devices from its configuration file.
        conf = os.path.join(WORK, "audit-%d.hcl" % port)
        open(conf, "w").write('audit "file" "bench" {\n  options = {\n    file_path = "%s"\n  }\n}\n' % os.path.join(WORK, "bao-audit-%d.log" % port))
        cmd.append("-config=" + conf)
    p, startup = start(cmd, base + "/v1/sys/health", env=env)
    time.sleep(1)
    bao(env, "kv", "put", "secret/bench", "value=" + "x" * 32)
    bao(env, "secrets", "enable", "transit")
    bao(env, "write", "-f", "transit/keys/bench")
    token = json.loads(bao(env, "token", "create", "-policy=default", "-format=json"))["auth"]["client_token"]
    time.sleep(2)
    return {"proc": p, "base": base, "env": env, "token": token, "startup_s": startup, "rss_mb": rss_mb(p.pid)}


def setup_openbao_raft():
    port, cport = free_port(), free_port()
    base = "http://127.0.0.1:%d" % port
    data = os.path.join(WORK, "raft")
    os.makedirs(data)
    conf = open(os.path.join(ROOT, "bench/openbao-raft.hcl")).read()
    conf = conf.replace("@DATA@", data).replace("@PORT@", str(port)).replace("@CPORT@", str(cport))
    cpath = os.path.join(WORK, "raft.hcl")
    open(cpath, "w").write(conf)
    env = dict(os.environ, BAO_ADDR=base, HOME=WORK)
    p, _ = start([BAO, "server", "-config", cpath], base + "/v1/sys/health", env=env)
    init = json.loads(bao(env, "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json"))
    bao(env, "operator", "unseal", init["unseal_keys_b64"][0])
    env["BAO_TOKEN"] = init["root_token"]
    for _ in range(100):
        try:
            bao(env, "secrets", "enable", "-path=secret", "kv-v2")
            break
        except subprocess.CalledProcessError:
            time.sleep(0.2)
    for _ in range(50):
        try:
            bao(env, "kv", "put", "secret/bench", "value=" + "x" * 32)
            break
        except subprocess.CalledProcessError:
            time.sleep(0.2)
    return {"proc": p, "base": base, "env": env, "token": init["root_token"]}


def main():
    payload = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01000000&price=50000.00000000&newClientOrderId=bench-0123456789abcdef&recvWindow=5000&x=12"
    assert len(payload) >= 150
    payload = payload[:150]
    kw = setup_keyward()
    base_kw = setup_keyward(BASELINE, "kw-baseline") if BASELINE else None
    dev = setup_openbao_dev()
    dev_audit = setup_openbao_dev(audit=True)
    raft = setup_openbao_raft()
    bare_port = free_port()
    bare, _ = start([BARE, "127.0.0.1:%d" % bare_port], "http://127.0.0.1:%d/" % bare_port)
    k = kw["keys"]
    b64 = base64.b64encode(payload.encode()).decode()
    rows = {
        "verify": [
            ("keyward", kw["base"] + "/v1/keys/verify", lua("kw-verify", "POST", {"Authorization": "Bearer " + k["verifier"]}, {"key": k["platform"]})),
            ("openbao", dev["base"] + "/v1/auth/token/lookup-self", lua("ob-verify", "GET", {"X-Vault-Token": dev["token"]}, None)),
            ("openbao + file audit", dev_audit["base"] + "/v1/auth/token/lookup-self", lua("oba-verify", "GET", {"X-Vault-Token": dev_audit["token"]}, None)),
            # The HTTP stack's limit, run for run beside keyward's verify:
            # the machine drifts within a run, so a ratio of runs taken
            # minutes apart measures the drift as much as the server.
            ("bare axum", "http://127.0.0.1:%d/echo" % bare_port, lua("bare", "POST", {}, {"a": 1})),
        ],
        "secret read": [
            ("keyward", kw["base"] + "/v1/secrets/bench", lua("kw-read", "GET", {"Authorization": "Bearer " + k["reader"]}, None)),
            ("openbao", dev["base"] + "/v1/secret/data/bench", lua("ob-read", "GET", {"X-Vault-Token": "root"}, None)),
            ("openbao + file audit", dev_audit["base"] + "/v1/secret/data/bench", lua("oba-read", "GET", {"X-Vault-Token": "root"}, None)),
        ],
        "HMAC sign": [
            ("keyward", kw["base"] + "/v1/sign/bench", lua("kw-sign", "POST", {"Authorization": "Bearer " + k["signer"]}, {"method": "POST", "path": "/api/v3/order", "body": payload})),
            ("openbao", dev["base"] + "/v1/transit/hmac/bench/sha2-256", lua("ob-sign", "POST", {"X-Vault-Token": "root"}, {"input": b64})),
            ("openbao + file audit", dev_audit["base"] + "/v1/transit/hmac/bench/sha2-256", lua("oba-sign", "POST", {"X-Vault-Token": "root"}, {"input": b64})),
        ],
        "secret write (durable)": [
            ("keyward", kw["base"] + "/v1/secrets/bench", lua("kw-write", "PUT", {"Authorization": "Bearer " + k["writer"]}, {"data": {"value": "y" * 32}})),
            ("openbao", raft["base"] + "/v1/secret/data/bench", lua("ob-write", "POST", {"X-Vault-Token": raft["token"]}, {"data": {"value": "y" * 32}})),
        ],
    }
    if base_kw:
        # The same requests against the baseline binary, right after keyward's.
        bk = base_kw["keys"]
        same = {"verify": ("POST", {"Authorization": "Bearer " + bk["verifier"]}, {"key": bk["platform"]}, "/v1/keys/verify"),
                "secret read": ("GET", {"Authorization": "Bearer " + bk["reader"]}, None, "/v1/secrets/bench"),
                "HMAC sign": ("POST", {"Authorization": "Bearer " + bk["signer"]}, {"method": "POST", "path": "/api/v3/order", "body": payload}, "/v1/sign/bench"),
                "secret write (durable)": ("PUT", {"Authorization": "Bearer " + bk["writer"]}, {"data": {"value": "y" * 32}}, "/v1/secrets/bench")}
        for row, (method, headers, body, path) in same.items():
            rows[row].insert(1, ("keyward baseline", base_kw["base"] + path, lua("kwb-" + re.sub(r"\W+", "-", row), method, headers, body)))
    results = {}
    for row, targets in rows.items():
        for conns in CONNS:
            for rep in range(REPS):
                # Alternating: every system once per repetition.
                for label, url, script in targets:
                    r = wrk(url, script, conns)
                    results.setdefault(row, {}).setdefault(str(conns), {}).setdefault(label, []).append(r)
                    print("%-24s c=%-3d %-24s %10.0f req/s  p50 %.3f ms  p99 %.3f ms%s" % (
                        row, conns, label, r["rps"], r["p50_ms"], r["p99_ms"],
                        "  (%d non-2xx)" % r["non_2xx"] if r["non_2xx"] else ""), file=sys.stderr)
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    table = []
    for row, by_conn in results.items():
        for conns, by_sys in by_conn.items():
            entry = {"row": row, "connections": int(conns)}
            for label, rs in by_sys.items():
                entry[label] = {"rps": med(rs, "rps"), "p50_ms": med(rs, "p50_ms"), "p99_ms": med(rs, "p99_ms"), "runs": rs}
            if "keyward" in entry and "openbao" in entry:
                entry["ratio"] = entry["keyward"]["rps"] / entry["openbao"]["rps"]
            if "openbao + file audit" in entry and "keyward" in entry:
                entry["ratio_vs_audit"] = entry["keyward"]["rps"] / entry["openbao + file audit"]["rps"]
            if "keyward baseline" in entry and "keyward" in entry:
                entry["ratio_vs_baseline"] = entry["keyward"]["rps"] / entry["keyward baseline"]["rps"]
            table.append(entry)
    bare32 = next((e["bare axum"]["rps"] for e in table if e["row"] == "verify" and e["connections"] == 32), None)
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except Exception:
        pass
    summary = {
        "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        "machine": "%d cores, %s, %s" % (os.cpu_count(), cpu, platform.platform()),
        "method": "wrk -t min(c,2) -c {1,32} -d %s, %d alternating repetitions, medians" % (DURATION, REPS),
        "rows": table,
        "idle_rss_mb": {"keyward": kw["rss_mb"], "openbao dev": dev["rss_mb"]},
        "start_to_healthy_ms": {"keyward": kw["startup_s"] * 1000, "openbao dev": dev["startup_s"] * 1000},
        "bare_axum_c32_rps": bare32,
        "baseline": BASELINE,
    }
    # keyward at scale (issue 18): the audit the rows above wrote, the
    # proxy beside nginx's relay, a million keys.
    summary["audit"] = scale.audit(kw)
    summary["proxy"] = scale.proxy(REPS)
    summary["keys"] = scale.keys()
    os.makedirs(os.path.join(ROOT, "bench/results"), exist_ok=True)
    json.dump(summary, open(os.path.join(ROOT, "bench/results/latest.json"), "w"), indent=1)
    md = render(summary)
    print(md)
    readme = os.path.join(ROOT, "README.md")
    text = open(readme).read()
    new = re.sub(r"<!-- bench:begin -->.*<!-- bench:end -->", "<!-- bench:begin -->\n" + md + "\n<!-- bench:end -->", text, flags=re.S)
    open(readme, "w").write(new)


def render(s):
    fmt = lambda x: "%s req/s (p50 %.2f / p99 %.2f ms)" % ("{:,.0f}".format(x["rps"]), x["p50_ms"], x["p99_ms"]) if x else "–"
    lines = ["Measured by `bench/run` on %s, %s. %s. keyward's audit is always on; OpenBao is shown without and with a file audit device; OpenBao's write row runs on durable single-node Raft." % (s["date"], s["machine"], s["method"]), "",
             "| row | conns | keyward | OpenBao | OpenBao + file audit | keyward / OpenBao |", "|---|---|---|---|---|---|"]
    for e in s["rows"]:
        ratio = "%.1f×" % e["ratio"] if "ratio" in e else ""
        if "ratio_vs_audit" in e:
            ratio += " (%.1f× vs audit)" % e["ratio_vs_audit"]
        lines.append("| %s | %d | %s | %s | %s | %s |" % (e["row"], e["connections"], fmt(e.get("keyward")), fmt(e.get("openbao")), fmt(e.get("openbao + file audit")), ratio))
    for e in s["rows"]:
        if "bare axum" in e:
            lines.append("| bare axum POST (the HTTP stack's limit; run for run beside verify) | %d | %s | | | |" % (e["connections"], fmt(e["bare axum"])))
    kv32 = next((e["keyward"]["rps"] for e in s["rows"] if e["row"] == "verify" and e["connections"] == 32), None)
    if kv32 and s["bare_axum_c32_rps"]:
        lines.append("")
        lines.append("Verify at 32 connections is %.0f%% of the bare axum handler, measured run for run beside it." % (100 * kv32 / s["bare_axum_c32_rps"]))
    base = [e for e in s["rows"] if "ratio_vs_baseline" in e]
    if base:
        lines.append("")
        lines.append("This build against the baseline binary `%s`, same run: %s." % (s.get("baseline"), "; ".join(
            "%s c%d %s vs %s req/s (%.2f×)" % (e["row"], e["connections"], "{:,.0f}".format(e["keyward"]["rps"]),
                                              "{:,.0f}".format(e["keyward baseline"]["rps"]), e["ratio_vs_baseline"]) for e in base)))
    r, st = s["idle_rss_mb"], s["start_to_healthy_ms"]
    lines.append("")
    lines.append("Idle RSS: keyward %.1f MB, OpenBao dev %.1f MB (%.2f×). Start to healthy: keyward %.0f ms, OpenBao dev %.0f ms (%.2f×)." % (
        r["keyward"], r["openbao dev"], r["keyward"] / r["openbao dev"], st["keyward"], st["openbao dev"], st["keyward"] / st["openbao dev"]))
    lines += scale.render(s)
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in PROCS:
            p.terminate()  # nginx's master takes its workers with it
        for p in PROCS:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(WORK, ignore_errors=True)
