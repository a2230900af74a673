"""What every bench/run part shares: where things are, starting a server
and waiting until it answers, wrk with a generated Lua script, RSS.
Stdlib only."""
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYWARD = os.path.join(ROOT, "target/release/keyward")
DURATION = os.environ.get("BENCH_DURATION", "5s")
WORK = tempfile.mkdtemp(prefix="keyward-bench-")
PROCS = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
        return json.loads(text) if text else {}


def start(cmd, health_url, env=None, stdout=None):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    PROCS.append(p)
    while True:
        try:
            urllib.request.urlopen(health_url, timeout=1).read()
            return p, time.monotonic() - t0
        except Exception as e:  # not up yet (or sealed: 5xx still means it answers)
            if hasattr(e, "code"):
                return p, time.monotonic() - t0
            if time.monotonic() - t0 > 60:
                raise RuntimeError("%s did not start" % cmd[0])
            time.sleep(0.002)


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def lua(name, method, headers, body):
    path = os.path.join(WORK, name + ".lua")
    lines = ['wrk.method = "%s"' % method]
    for k, v in headers.items():
        lines.append('wrk.headers["%s"] = "%s"' % (k, v))
    if body is not None:
        lines.append("wrk.body = [=[%s]=]" % json.dumps(body))
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    open(path, "w").write("\n".join(lines) + "\n")
    return path


def to_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def wrk(url, script, conns, duration=None):
    """wrk at `conns` connections: requests a second, p50 and p99 (ms),
    answers that were not 2xx/3xx, and the 2xx/3xx answers in all."""
    threads = min(conns, 2)
    args = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d" + (duration or DURATION), "--latency"]
    if script:
        args += ["-s", script]
    out = subprocess.run(args + [url], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non_2xx = int(errors.group(1)) if errors else 0
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": non_2xx, "ok": total - non_2xx}
