#!/usr/bin/env python3
"""Access-key creation at 32 connections on a fresh server, with keyward's
CPU time per key (/proc/<pid>/stat) and the audit batches it took (the
audit_write_duration_seconds count in /metrics).

    python3 bench/key_create.py [BINARY] [REPS]    # default target/release/keyward 2
"""
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import run  # noqa: E402


def cpu_s(pid):
    fields = open("/proc/%d/stat" % pid).read().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else common.KEYWARD
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    kw = run.setup_keyward(binary, "key-create")
    pid = kw["proc"].pid
    script = common.lua("key-create", "POST", kw["admin"], {"name": "bot", "namespace": "bench", "permissions": ["orders.read"]})

    def batches():
        text = urllib.request.urlopen(urllib.request.Request(kw["base"] + "/metrics", headers=kw["admin"])).read().decode()
        m = re.search(r"audit_write_duration_seconds_count\S* (\d+)", text)
        return int(m.group(1)) if m else 0

    for _ in range(reps):
        b0, c0 = batches(), cpu_s(pid)
        r = common.wrk(kw["base"] + "/v1/keys", script, 32, "8s")
        made, spent, taken = r["ok"], cpu_s(pid) - c0, batches() - b0
        print("%.0f keys/s (%d non-2xx), keyward CPU %.0f us a key, %.1f keys an audit batch" % (
            r["rps"], r["non_2xx"], spent / max(made, 1) * 1e6, made / max(taken, 1)))
    kw["proc"].send_signal(2)
    kw["proc"].wait()


if __name__ == "__main__":
    main()
