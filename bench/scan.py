#!/usr/bin/env python3
"""keyward scan against gitleaks, in one run.

Generates a corpus of trading-bot files (Python, JS, Go, Rust, YAML, TOML,
JSON, .env, notebooks) with credentials of every kind keyward scan knows
planted in them, fresh random values each run, plus look-alike decoys and
filler code. Runs both scanners on it and on a copy of /usr/share/doc, and
prints recall per kind, decoys reported and throughput side by side.

    bench/scan [--seed N] [--filler-mb 60] [--reps 3]
"""

import argparse
import base64
import binascii
import json
import os
import random
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = string.ascii_letters + string.digits + "+/"


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def s(self, alphabet, n):
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def uuid(self):
        h = self.s(HEX, 32)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def keyward_key(self, valid=True):
        body = "kw_" + self.s(B62, 43)
        crc = binascii.crc32(body.encode()) & 0xFFFFFFFF
        if not valid:
            crc ^= 1
        digits = []
        for _ in range(6):
            digits.append(B62[crc % 62])
            crc //= 62
        return body + "".join(reversed(digits))

    def keyward_token(self):
        claims = json.dumps({"key": "key_" + self.s(B62, 16), "scopes": ["secret:read:*"], "exp": 1900000000000})
        payload = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
        return f"kwt_{payload}.{self.s(ALNUM + '-_', 43)}"

    def pem(self, kind="EC"):
        body = "\n".join(self.s(B64, 64) for _ in range(4))
        return f"-----BEGIN {kind} PRIVATE KEY-----\n{body}\n-----END {kind} PRIVATE KEY-----"


def plant_files(g):
    """(files {name: text}, plants [(kind, name, line)])."""
    files, plants = {}, []

    def add(name, text, marks):
        files[name] = text
        lines = text.split("\n")
        for kind, needle in marks:
            line = next(i + 1 for i, l in enumerate(lines) if needle in l)
            plants.append((kind, name, line))

    n = 0
    for _ in range(3):
        n += 1
        k, s = g.s(ALNUM, 64), g.s(ALNUM, 64)
        add(f"bots/binance_{n}.py", f"import ccxt\n\nex = ccxt.binance({{\n    'apiKey': '{k}',\n    'secret': '{s}',\n}})\n",
            [("binance", k), ("binance", s)])
        k, s, p = g.uuid(), g.s(HEX, 32).upper(), "Pw" + g.s(ALNUM, 10)
        add(f"bots/okx_{n}.js", f"const ccxt = require('ccxt');\nconst okx = new ccxt.okx({{\n  apiKey: '{k}',\n  secret: '{s}',\n  password: '{p}',\n}});\n",
            [("okx", k), ("okx", s), ("okx", p)])
        k, s = g.s(ALNUM, 18), g.s(ALNUM, 36)
        add(f"freqtrade/config_{n}.json", json.dumps({"exchange": {"name": "bybit", "key": k, "secret": s, "ccxt_config": {}}}, indent=2) + "\n",
            [("bybit", k), ("bybit", s)])
        k, s = g.s(B64, 56), g.s(B64, 86) + "=="
        add(f"deploy/kraken_{n}/.env", f"KRAKEN_API_KEY={k}\nKRAKEN_API_SECRET={s}\n", [("kraken", k), ("kraken", s)])
        k, s, p = g.s(HEX, 24), g.uuid(), g.s(ALNUM, 12)
        add(f"deploy/kucoin_{n}.yaml", f"exchange:\n  name: kucoin\n  api_key: {k}\n  api_secret: {s}\n  api_passphrase: {p}\n",
            [("kucoin", k), ("kucoin", s), ("kucoin", p)])
        k, s, p = "bg_" + g.s(HEX, 32), g.s(HEX, 64), g.s(ALNUM, 12)
        add(f"deploy/bitget_{n}.toml", f"[bitget]\napi_key = \"{k}\"\nsecret_key = \"{s}\"\npassphrase = \"{p}\"\n",
            [("bitget", k), ("bitget", s), ("bitget", p)])
        k, s = g.s(HEX, 32), g.s(HEX, 64)
        add(f"src/gate_{n}.go", f"package main\n\n// gate.io credentials\nconst gateApiKey = \"{k}\"\nconst gateApiSecret = \"{s}\"\n",
            [("gate", k), ("gate", s)])
        k, s = g.s(ALNUM, 8), g.s(ALNUM + "_-", 43)
        add(f"bots/deribit_{n}.py", f"import ccxt\nderibit = ccxt.deribit({{'apiKey': '{k}', \n  'secret': '{s}'}})\n",
            [("deribit", k), ("deribit", s)])
        name = f"organizations/{g.uuid()}/apiKeys/{g.uuid()}"
        pem = g.pem("EC").replace("\n", "\\n")
        add(f"keys/cdp_api_key_{n}.json", f"{{\n  \"name\": \"{name}\",\n  \"privateKey\": \"{pem}\\n\"\n}}\n",
            [("coinbase", name), ("coinbase", "BEGIN EC PRIVATE KEY")])
        for kind in ("RSA", "OPENSSH", ""):
            header = f"{kind} PRIVATE KEY" if kind else "PRIVATE KEY"
            body = "\n".join(g.s(B64, 64) for _ in range(6))
            add(f"certs/{(kind or 'pkcs8').lower()}_{n}.pem", f"-----BEGIN {header}-----\n{body}\n-----END {header}-----\n",
                [("pem", f"BEGIN {header}")])
        kw = g.keyward_key()
        add(f"web/client_{n}.ts", f"export const client = new Keyward({{ token: \"{kw}\" }});\n", [("keyward-key", kw)])
        tok = g.keyward_token()
        add(f"scripts/deploy_{n}.sh", f"#!/bin/sh\nexport KEYWARD_TOKEN='{tok}'\n", [("keyward-token", tok)])
        w = g.s(ALNUM, 32)
        add(f"src/alerts_{n}.rs", f"const WEBHOOK_TOKEN: &str = \"{w}\";\n", [("generic", w)])
        w = g.s(ALNUM, 40)
        src = json.dumps({"cells": [{"cell_type": "code", "source": ["import requests\n", f"auth_token = \"{w}\"\n"]}]})
        add(f"research/explore_{n}.ipynb", src + "\n", [("generic", w)])
    return files, plants


def decoy_files(g):
    d = {}
    d["decoy/placeholders.py"] = (
        "import ccxt, os\n"
        "ex = ccxt.binance({'apiKey': 'YOUR_API_KEY', 'secret': '<your-secret>'})\n"
        "password = 'changeme'\napi_secret = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'\n"
        "key = os.environ['BINANCE_API_KEY']\nsecret = os.getenv('BINANCE_SECRET')\n"
        f"token = '{g.keyward_key(valid=False)}'\n"
    )
    d["decoy/env.js"] = "const key = process.env.BINANCE_API_KEY;\nconst secret = `${process.env.SECRET}`;\n"
    d["decoy/config.yaml"] = "exchange:\n  name: binance\n  key: ${BINANCE_KEY}\n  secret: ${BINANCE_SECRET}\n"
    d["decoy/package-lock.json"] = json.dumps({"packages": {f"node_modules/p{i}": {"integrity": "sha512-" + g.s(B64, 86) + "==", "resolved": f"https://registry.npmjs.org/p{i}.tgz"} for i in range(50)}}, indent=2)
    d["decoy/page.html"] = f"<script src=\"x.js\" integrity=\"sha384-{g.s(B64, 64)}\"></script>\n<img src=\"data:image/png;base64,{g.s(B64, 200)}\">\n"
    d["decoy/meta.py"] = "\n".join(f"commit_{i} = '{g.s(HEX, 40)}'\nrequest_id_{i} = '{g.uuid()}'\nchecksum_{i} = '{g.s(HEX, 64)}'" for i in range(20)) + "\n"
    d["decoy/README.md"] = "Put your key in the file:\n\n    -----BEGIN PRIVATE KEY-----\n    ...\n    -----END PRIVATE KEY-----\n"
    return d


def filler(g, mb):
    """Plain code with no secret in it, for throughput."""
    words = ["order", "price", "qty", "symbol", "balance", "ticker", "strategy", "signal", "position", "market"]
    out, size, i = {}, 0, 0
    while size < mb * 1_000_000:
        lines = []
        for _ in range(2000):
            a, b = g.r.choice(words), g.r.choice(words)
            lines.append(f"    {a}_{g.r.randint(0, 99)} = compute_{b}({a}, {g.r.randint(0, 10000)}) # {b} check")
        text = "def f():\n" + "\n".join(lines) + "\n"
        out[f"filler/mod_{i}.py"] = text
        size += len(text)
        i += 1
    return out


def write(root, files):
    for name, text in files.items():
        p = os.path.join(root, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)


def run_keyward(bin_, root):
    out = subprocess.run([bin_, "scan", root, "--format", "json"], capture_output=True, text=True)
    if out.returncode not in (0, 1):
        sys.exit(f"keyward scan failed: {out.stderr}")
    return [(os.path.relpath(f["file"], root), f["line"]) for f in json.loads(out.stdout)]


def run_gitleaks(bin_, root, report):
    out = subprocess.run([bin_, "dir", root, "--report-format", "json", "--report-path", report, "--no-banner", "--exit-code", "0", "--log-level", "error"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"gitleaks failed: {out.stderr}")
    with open(report) as f:
        return [(os.path.relpath(x["File"], root), x["StartLine"]) for x in json.load(f) or []]


def timed(fn, reps):
    times, result = [], None
    for _ in range(reps):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def tree_bytes(root):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs if os.path.isfile(os.path.join(d, f)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keyward", default="target/release/keyward")
    ap.add_argument("--gitleaks", required=True)
    ap.add_argument("--seed", type=int, default=random.SystemRandom().randrange(1 << 30))
    ap.add_argument("--filler-mb", type=int, default=60)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    g = Gen(a.seed)
    work = tempfile.mkdtemp(prefix="kw-scan-bench-")
    try:
        corpus = os.path.join(work, "corpus")
        files, plants = plant_files(g)
        write(corpus, files)
        write(corpus, decoy_files(g))
        write(corpus, filler(g, a.filler_mb))
        kw_t, kw = timed(lambda: run_keyward(a.keyward, corpus), a.reps)
        gl_t, gl = timed(lambda: run_gitleaks(a.gitleaks, corpus, os.path.join(work, "gl.json")), a.reps)
        size = tree_bytes(corpus)
        print(f"seed {a.seed}; corpus {size / 1e6:.1f} MB, {len(plants)} planted credentials\n")
        print("| kind | planted | keyward | gitleaks |\n|---|---|---|---|")
        kinds = sorted({k for k, _, _ in plants})
        missed_by_kw = []
        for kind in kinds:
            mine = [(f, l) for k, f, l in plants if k == kind]
            hit_kw = sum(1 for p in mine if p in set(kw))
            hit_gl = sum(1 for p in mine if p in set(gl))
            missed_by_kw += [p for p in mine if p in set(gl) and p not in set(kw)]
            print(f"| {kind} | {len(mine)} | {hit_kw} | {hit_gl} |")
        planted = {(f, l) for _, f, l in plants}
        dec_kw = [p for p in kw if p[0].startswith("decoy/")]
        dec_gl = [p for p in gl if p[0].startswith("decoy/")]
        other_kw = [p for p in kw if p not in planted and not p[0].startswith("decoy/")]
        other_gl = [p for p in gl if p not in planted and not p[0].startswith("decoy/")]
        print(f"| decoys reported | - | {len(dec_kw)} | {len(dec_gl)} |")
        print(f"| other findings (filler) | - | {len(other_kw)} | {len(other_gl)} |")
        print(f"\nfound by gitleaks and not by keyward: {missed_by_kw or 'none'}")
        print(f"\n| throughput (median of {a.reps}) | keyward | gitleaks | ratio |\n|---|---|---|---|")
        print(f"| corpus, {size / 1e6:.0f} MB | {size / kw_t / 1e6:.0f} MB/s ({kw_t:.2f} s) | {size / gl_t / 1e6:.0f} MB/s ({gl_t:.2f} s) | {gl_t / kw_t:.1f}x |")
        docs = os.path.join(work, "doc")
        shutil.copytree("/usr/share/doc", docs, symlinks=True, ignore_dangling_symlinks=True)
        dsize = tree_bytes(docs)
        kd_t, _ = timed(lambda: run_keyward(a.keyward, docs), a.reps)
        gd_t, _ = timed(lambda: run_gitleaks(a.gitleaks, docs, os.path.join(work, "gd.json")), a.reps)
        print(f"| /usr/share/doc, {dsize / 1e6:.0f} MB | {dsize / kd_t / 1e6:.0f} MB/s ({kd_t:.2f} s) | {dsize / gd_t / 1e6:.0f} MB/s ({gd_t:.2f} s) | {gd_t / kd_t:.1f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
