//! Access-key verification through the real server: every denial code,
//! IPv4 and IPv6 allowlists, forwarding headers, expiry at the boundary,
//! roll grace, rate limits, exact uses (also across a restart), the
//! failed-authentication throttle, lifecycle commands and restart
//! persistence of every field.

use crate::harness::*;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

const T0: i64 = 1_900_000_000_000;

fn reader(s: &Server, extra: Value) -> (String, String) {
    let mut body = json!({"name": "bot", "scopes": ["secret:read:x"]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    create_key(s, body)
}

fn read(s: &Server, key: &str) -> (u16, Value) {
    s.http("GET", "/v1/secrets/x", Some(key), None)
}

fn clocked(dir: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec!["--test-clock"];
    args.extend_from_slice(extra);
    let s = start(dir, &args);
    s.set_clock(T0);
    put(&s, s.admin(), "x", json!({"k": "v"}));
    s
}

#[test]
fn expiry_not_before_and_disable_at_their_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let s = clocked(dir.path(), &[]);
    let (_, exp) = reader(&s, json!({"expires_at": rfc3339(T0 + 60_000)}));
    let (_, ttl) = reader(&s, json!({"ttl": "1h"}));
    let (_, pending) = reader(&s, json!({"not_before": rfc3339(T0 + 10_000)}));
    assert_eq!(read(&s, &exp).0, 200);
    assert_error(&read(&s, &pending), 401, "key_pending");
    s.set_clock(T0 + 9_999);
    assert_error(&read(&s, &pending), 401, "key_pending");
    s.set_clock(T0 + 10_000);
    assert_eq!(read(&s, &pending).0, 200);
    s.set_clock(T0 + 59_999);
    assert_eq!(read(&s, &exp).0, 200);
    s.set_clock(T0 + 60_000);
    assert_error(&read(&s, &exp), 401, "key_expired");
    assert_eq!(read(&s, &ttl).0, 200);
    s.set_clock(T0 + 3_600_000);
    assert_error(&read(&s, &ttl), 401, "key_expired");
    // An expired key shows as expired.
    let (_, list) = s.http("GET", "/v1/keys?state=expired", Some(s.admin()), None);
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);

    // Disable and enable.
    let (id, k) = reader(&s, json!({}));
    let o = s.cli(Some(s.admin()), &["key", "disable", &id], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_error(&read(&s, &k), 401, "key_disabled");
    // Disabling twice is harmless.
    assert_eq!(s.http("POST", &format!("/v1/keys/{id}/disable"), Some(s.admin()), None).0, 200);
    let o = s.cli(Some(s.admin()), &["key", "enable", &id], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&s, &k).0, 200);
    s.cli(Some(s.admin()), &["key", "revoke", &id], None);
    assert_error(&s.http("POST", &format!("/v1/keys/{id}/enable"), Some(s.admin()), None), 409, "invalid_state");
    assert_error(&read(&s, &k), 401, "key_revoked");
}

#[test]
fn roll_keeps_the_old_key_until_the_grace_ends() {
    let dir = tempfile::tempdir().unwrap();
    let s = clocked(dir.path(), &[]);
    let (id, old) = reader(&s, json!({"owner": "desk", "allow_ips": ["127.0.0.0/8"], "meta": {"bot": "mm-1"}}));
    let o = s.cli(Some(s.admin()), &["key", "roll", &id, "--grace", "1h", "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let rolled: Value = serde_json::from_slice(&o.stdout).unwrap();
    let new = rolled["key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(rolled["rolled_from"], id);
    // Same settings.
    assert_eq!(rolled["scopes"], json!(["secret:read:x"]));
    assert_eq!(rolled["allow_ips"], json!(["127.0.0.0/8"]));
    assert_eq!(rolled["owner"], "desk");
    assert_eq!(rolled["meta"], json!({"bot": "mm-1"}));
    assert_eq!(read(&s, &old).0, 200);
    assert_eq!(read(&s, &new).0, 200);
    s.set_clock(T0 + 3_599_999);
    assert_eq!(read(&s, &old).0, 200);
    s.set_clock(T0 + 3_600_000);
    assert_error(&read(&s, &old), 401, "key_rolled");
    assert_eq!(read(&s, &new).0, 200);
    let (_, shown) = s.http("GET", &format!("/v1/keys/{id}"), Some(s.admin()), None);
    assert_eq!((shown["state"].as_str(), &shown["rolled_to"]), (Some("rolled"), &rolled["id"]));
    // A rolled key cannot be rolled again; zero grace rolls at once.
    assert_error(&s.http("POST", &format!("/v1/keys/{id}/roll"), Some(s.admin()), None), 409, "invalid_state");
    let nid = rolled["id"].as_str().unwrap();
    let (st, again) = s.http("POST", &format!("/v1/keys/{nid}/roll"), Some(s.admin()), Some(&json!({"grace": "0s"})));
    assert_eq!(st, 201, "{again}");
    assert_error(&read(&s, &new), 401, "key_rolled");
    assert_eq!(read(&s, again["key"].as_str().unwrap()).0, 200);
}

#[test]
fn ipv6_allowlists() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--listen", "[::1]:0"]);
    assert!(s.addr.contains("[::1]"), "{}", s.addr);
    put(&s, s.admin(), "x", json!({"k": "v"}));
    let (_, v6) = reader(&s, json!({"allow_ips": ["::1/128"]}));
    let (_, v6net) = reader(&s, json!({"allow_ips": ["2001:db8::/32"]}));
    let (_, v4) = reader(&s, json!({"allow_ips": ["127.0.0.1/32"]}));
    assert_eq!(read(&s, &v6).0, 200);
    assert_error(&read(&s, &v6net), 403, "ip_not_allowed");
    assert_error(&read(&s, &v4), 403, "ip_not_allowed");
    let (st, _) = s.http(
        "POST",
        "/v1/keys",
        Some(s.admin()),
        Some(&json!({"name": "t", "scopes": ["account:a:read"], "allow_ips": ["::/0"]})),
    );
    assert_eq!(st, 201);
}

#[test]
fn forwarding_headers_count_only_from_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    put(&s, s.admin(), "x", json!({"k": "v"}));
    let (_, office) = reader(&s, json!({"allow_ips": ["203.0.113.0/24"]}));
    let (_, local) = reader(&s, json!({"allow_ips": ["127.0.0.1/32"]}));
    // No trusted proxies: spoofed headers from the peer are ignored.
    for h in [("x-forwarded-for", "203.0.113.7"), ("forwarded", "for=203.0.113.7"), ("x-real-ip", "203.0.113.7")] {
        let r = s.http_from("127.0.0.1", "GET", "/v1/secrets/x", Some(&office), None, &[h]);
        assert_error(&r.pair(), 403, "ip_not_allowed");
        assert_eq!(s.http_from("127.0.0.1", "GET", "/v1/secrets/x", Some(&local), None, &[h]).status, 200);
    }
    drop(s);

    // 127.0.0.1 is a trusted proxy; 127.0.0.2 is not.
    let s = start(dir.path(), &["--trusted-proxy", "127.0.0.1/32", "--trusted-proxy", "10.0.0.0/8"]);
    let via = |from: &str, key: &str, h: (&str, &str)| {
        s.http_from(from, "GET", "/v1/secrets/x", Some(key), None, &[h]).pair()
    };
    assert_eq!(via("127.0.0.1", &office, ("x-forwarded-for", "203.0.113.7")).0, 200);
    assert_eq!(via("127.0.0.1", &office, ("x-forwarded-for", "198.51.100.1, 203.0.113.7, 10.0.0.3")).0, 200);
    assert_eq!(via("127.0.0.1", &office, ("forwarded", "for=203.0.113.7;proto=https")).0, 200);
    // The rightmost untrusted address is the client, not a spoofed leftmost one.
    assert_error(&via("127.0.0.1", &office, ("x-forwarded-for", "203.0.113.7, 198.51.100.1")), 403, "ip_not_allowed");
    // X-Real-IP is never believed.
    assert_error(&via("127.0.0.1", &office, ("x-real-ip", "203.0.113.7")), 403, "ip_not_allowed");
    // An untrusted peer's headers are ignored even with proxies configured.
    assert_error(&via("127.0.0.2", &office, ("x-forwarded-for", "203.0.113.7")), 403, "ip_not_allowed");
    // The local key, seen through the proxy, comes from 203.0.113.7: refused.
    assert_error(&via("127.0.0.1", &local, ("x-forwarded-for", "203.0.113.7")), 403, "ip_not_allowed");
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    put(&s, s.admin(), "x", json!({"k": "v"}));
    let (_, k) = reader(&s, json!({"rate": "1/m,burst=3"}));
    for _ in 0..3 {
        assert_eq!(read(&s, &k).0, 200);
    }
    let r = s.http_from("127.0.0.1", "GET", "/v1/secrets/x", Some(&k), None, &[]);
    assert_error(&r.pair(), 429, "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another key is not affected.
    let (_, other) = reader(&s, json!({"rate": "1/m"}));
    assert_eq!(read(&s, &other).0, 200);
    for bad in ["10", "10/d", "0/s", "5/s,burst=x"] {
        let got = s.http(
            "POST",
            "/v1/keys",
            Some(s.admin()),
            Some(&json!({"name": "r", "scopes": ["secret:read:x"], "rate": bad})),
        );
        assert_error(&got, 400, "invalid_field");
        assert!(got.1["error"]["message"].as_str().unwrap().contains("10/s,burst=20"));
    }
}

#[test]
fn uses_are_exact_under_concurrency_and_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let s = start(dir.path(), &["--listen", &listen]);
    let admin = s.admin().to_string();
    put(&s, &admin, "x", json!({"k": "v"}));
    let (_, k) = reader(&s, json!({"uses": 10}));

    // 40 concurrent requests: exactly 10 succeed.
    let ok = AtomicUsize::new(0);
    let exhausted = AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for _ in 0..40 {
            sc.spawn(|| match read(&s, &k) {
                (200, _) => ok.fetch_add(1, Ordering::SeqCst),
                (403, v) if v["error"]["code"] == "uses_exhausted" => exhausted.fetch_add(1, Ordering::SeqCst),
                other => panic!("{other:?}"),
            });
        }
    });
    assert_eq!((ok.load(Ordering::SeqCst), exhausted.load(Ordering::SeqCst)), (10, 30));

    // Again with a restart in the middle: callers retry until they get an answer.
    let (_, k2) = reader(&s, json!({"uses": 10}));
    let addr = s.addr.clone();
    let ok = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let mut s = Some(s);
    std::thread::scope(|sc| {
        for _ in 0..8 {
            sc.spawn(|| {
                let c =
                    reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap();
                loop {
                    match c.get(format!("{addr}/v1/secrets/x")).bearer_auth(&k2).send() {
                        Ok(r) if r.status() == 200 => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) if r.status() == 403 => break,
                        Ok(r) if r.status() == 503 => {}
                        Ok(r) => panic!("unexpected {}", r.status()),
                        Err(_) => {}
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        // Restart once some uses are gone.
        while ok.load(Ordering::SeqCst) < 3 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        s.take().unwrap().stop();
        s = Some(start(dir.path(), &["--listen", &listen]));
    });
    assert_eq!(done.load(Ordering::SeqCst), 8);
    assert_eq!(ok.load(Ordering::SeqCst), 10);
    let s = s.unwrap();
    let (_, shown) = s.http("GET", "/v1/keys", Some(&admin), None);
    let left: Vec<_> = shown["keys"].as_array().unwrap().iter().filter_map(|k| k["uses_remaining"].as_i64()).collect();
    assert_eq!(left, [0, 0]);
}

#[test]
fn failed_authentications_are_throttled_but_valid_keys_pass() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--auth-slow-after", "3", "--auth-block-after", "6", "--auth-block-for", "1m"]);
    put(&s, s.admin(), "x", json!({"k": "v"}));
    let (_, good) = reader(&s, json!({}));
    let bad = keyward_core::access_key::AccessKeySecret::generate("kw").unwrap();
    let mut codes = Vec::new();
    let started = std::time::Instant::now();
    for _ in 0..8 {
        let r = s.http_from("127.0.0.3", "GET", "/v1/secrets/x", Some(bad.expose()), None, &[]);
        codes.push(r.body["error"]["code"].as_str().unwrap().to_string());
        if r.status == 429 {
            assert!(r.headers.contains_key("retry-after"));
        }
    }
    assert_eq!(&codes[..6], ["key_invalid"; 6]);
    assert_eq!(&codes[6..], ["auth_throttled"; 2]);
    assert!(started.elapsed() >= std::time::Duration::from_millis(50 + 100 + 150), "answers 4 to 6 are slowed");
    // The same address with a valid key: never refused, never slowed much.
    let t = std::time::Instant::now();
    assert_eq!(s.http_from("127.0.0.3", "GET", "/v1/secrets/x", Some(&good), None, &[]).status, 200);
    assert!(t.elapsed() < std::time::Duration::from_millis(500));
    // Another address is not affected.
    assert_error(
        &s.http_from("127.0.0.4", "GET", "/v1/secrets/x", Some(bad.expose()), None, &[]).pair(),
        401,
        "key_invalid",
    );
}

#[test]
fn every_field_survives_a_restart_and_list_shows_last_use() {
    let dir = tempfile::tempdir().unwrap();
    let s = clocked(dir.path(), &[]);
    let a = s.admin().to_string();
    let body = json!({
        "name": "full", "scopes": ["secret:read:x", "account:bin-*:trade"], "owner": "desk-1",
        "allow_ips": ["127.0.0.0/8", "2001:db8::/32"], "expires_at": rfc3339(T0 + 86_400_000),
        "not_before": rfc3339(T0 - 1000), "rate": "100/s,burst=200", "uses": 50, "meta": {"team": "mm", "env": "prod"}
    });
    let (id, k) = create_key(&s, body);
    let (pid, _) = create_key(
        &s,
        json!({"name": "p", "namespace": "shop-api", "permissions": ["orders.read"], "meta": {"user": "42"}}),
    );
    assert_eq!(s.http_from("127.0.0.5", "GET", "/v1/secrets/x", Some(&k), None, &[]).status, 200);
    let o = s.cli(Some(&a), &["key", "list", "--owner", "desk-1"], None);
    assert!(stdout(&o).contains("127.0.0.5") && stdout(&o).contains(&id), "{}", stdout(&o));
    let o = s.cli(Some(&a), &["key", "list", "--state", "active", "--json"], None);
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(listed["keys"].as_array().unwrap().iter().all(|k| k["state"] == "active"));
    let before = (
        s.http("GET", &format!("/v1/keys/{id}"), Some(&a), None).1,
        s.http("GET", &format!("/v1/keys/{pid}"), Some(&a), None).1,
    );
    assert_eq!(before.0["uses_remaining"], 49);
    assert_eq!(before.0["last_used_ip"], "127.0.0.5");
    s.stop();
    let mut s = start(dir.path(), &["--test-clock"]);
    s.admin = Some(a.clone());
    s.set_clock(T0);
    let after = (
        s.http("GET", &format!("/v1/keys/{id}"), Some(&a), None).1,
        s.http("GET", &format!("/v1/keys/{pid}"), Some(&a), None).1,
    );
    assert_eq!(after, before);
    assert_eq!(s.http_from("127.0.0.5", "GET", "/v1/secrets/x", Some(&k), None, &[]).status, 200);
    assert_eq!(s.http("GET", &format!("/v1/keys/{id}"), Some(&a), None).1["uses_remaining"], 48);
}
