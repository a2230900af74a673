//! M-of-N approvals (M = 2 by default) against the real binary: every
//! gated change (a withdraw/transfer/export/admin grant, an approver, a
//! withdrawal address, a raised cap, an upstream, an unfreeze) is refused
//! until two distinct approver keys other than the requester's approve it,
//! then applied exactly once; the requester's own approval and a second
//! approval from one key are refused; a request expires, or is rejected,
//! and what it prepared is undone.

use crate::harness::*;
use crate::incident::{fake, proxy, setup};
use serde_json::{Value, json};

struct Desk {
    s: Server,
    /// An approver that may also manage keys and accounts (it asks for changes too).
    lead: String,
    b: String,
    c: String,
    _fake: FakeExchange,
    _dir: tempfile::TempDir,
}

/// A server with approvals in force: the admin enrols the lead and B at
/// once (fewer than M approvers exist), then C needs the two of them.
fn desk() -> Desk {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), &fake, &["--test-clock", "--alert-check-every", "1s"]);
    s.set_clock(now_ms());
    let approver = |name: &str, extra: &[&str]| {
        let mut scopes = vec!["approve".to_string()];
        scopes.extend(extra.iter().map(|x| x.to_string()));
        s.http(
            "POST",
            "/v1/keys",
            Some(s.admin()),
            Some(&json!({"name": name, "scopes": scopes, "allow_ips": ["127.0.0.1/32"]})),
        )
    };
    let (st, lead) = approver("lead", &["key:admin", "account:bin:*", "sys:admin"]);
    assert_eq!(st, 201, "{lead}");
    let (st, b) = approver("b", &[]);
    assert_eq!(st, 201, "{b}");
    // Two approvers exist: a third is a gated grant, created disabled.
    let (st, c) = approver("c", &[]);
    assert_eq!((st, c["state"].as_str()), (202, Some("pending_approval")), "{c}");
    let (lead_key, b_key, c_key) = (key(&lead), key(&b), key(&c));
    assert_error(&s.http("GET", "/v1/approvals", Some(&c_key), None), 401, "key_disabled");
    let id = c["approval"]["id"].as_str().unwrap().to_string();
    approve(&s, &lead_key, &id, "pending");
    approve(&s, &b_key, &id, "applied");
    assert_eq!(s.http("GET", "/v1/approvals", Some(&c_key), None).0, 200, "C is an approver now");
    Desk { s, lead: lead_key, b: b_key, c: c_key, _fake: fake, _dir: dir }
}

pub(crate) fn now_ms() -> i64 {
    use keyward_core::clock::Clock;
    keyward_core::clock::SystemClock.now_ms()
}

fn key(v: &Value) -> String {
    v["key"].as_str().unwrap().to_string()
}

fn approve(s: &Server, key: &str, id: &str, then: &str) -> Value {
    let (st, v) = s.http("POST", &format!("/v1/approvals/{id}/approve"), Some(key), None);
    assert_eq!((st, v["state"].as_str()), (200, Some(then)), "{v}");
    v
}

fn waits(got: &(u16, Value)) -> String {
    assert_eq!((got.0, got.1["state"].as_str()), (202, Some("pending_approval")), "{}", got.1);
    got.1["approval"]["id"].as_str().unwrap().to_string()
}

#[test]
fn a_withdraw_grant_waits_for_two_distinct_approvers_other_than_the_requester() {
    let d = desk();
    let s = &d.s;
    let body = json!({"name": "treasury", "scopes": ["account:bin:withdraw"], "allow_ips": ["127.0.0.1/32"]});
    let got = s.http("POST", "/v1/keys", Some(&d.lead), Some(&body));
    let id = waits(&got);
    let (key_id, w) = (got.1["id"].as_str().unwrap().to_string(), key(&got.1));
    // Created, disabled, and enabled by nothing but the approvals.
    let refused = proxy(s, &w, "POST", "bin/sapi/v1/capital/withdraw/apply?coin=BTC&address=x&amount=1", None);
    assert_error(&refused, 401, "key_disabled");
    assert!(refused.1["error"]["message"].as_str().unwrap().contains(&id), "{}", refused.1);
    assert_error(
        &s.http("POST", &format!("/v1/keys/{key_id}/enable"), Some(s.admin()), None),
        409,
        "approval_required",
    );
    // The requester's own approval, and one key twice, are refused; a key without approve too.
    assert_error(&s.http("POST", &format!("/v1/approvals/{id}/approve"), Some(&d.lead), None), 403, "approval_refused");
    approve(s, &d.b, &id, "pending");
    assert_error(&s.http("POST", &format!("/v1/approvals/{id}/approve"), Some(&d.b), None), 403, "approval_refused");
    assert_error(&s.http("POST", &format!("/v1/approvals/{id}/approve"), Some(s.admin()), None), 403, "scope_missing");
    assert_error(&refused, 401, "key_disabled");
    let done = approve(s, &d.c, &id, "applied");
    assert_eq!(done["approvals"].as_array().unwrap().len(), 2, "{done}");
    // Active now: the withdrawal reaches the allowlist (empty), not key_disabled.
    let after = proxy(s, &w, "POST", "bin/sapi/v1/capital/withdraw/apply?coin=BTC&address=x&amount=1", None);
    assert_error(&after, 403, "withdraw_policy");
    // Closed: nothing more can be given.
    assert_error(&s.http("POST", &format!("/v1/approvals/{id}/approve"), Some(&d.b), None), 409, "approval_closed");
    // The CLI shows who approved.
    let o = s.cli(Some(&d.b), &["approvals", "show", &id], None);
    assert!(stdout(&o).contains("applied") && stdout(&o).contains("approvals    2 of 2"), "{}", stdout(&o));
}

#[test]
fn addresses_caps_upstreams_and_unfreezing_wait_and_apply_once() {
    let d = desk();
    let s = &d.s;
    let admin = s.admin().to_string();
    // A withdrawal address.
    let id = waits(&s.http(
        "POST",
        "/v1/accounts/bin/addresses",
        Some(&admin),
        Some(&json!({"asset": "BTC", "address": "bc1qcold"})),
    ));
    let (_, show) = s.http("GET", "/v1/accounts/bin", Some(&admin), None);
    assert_eq!(show["withdrawal_addresses"], json!([]), "not before the approvals");
    approve(s, &d.b, &id, "pending");
    approve(s, &d.c, &id, "applied");
    let (_, show) = s.http("GET", "/v1/accounts/bin", Some(&admin), None);
    assert_eq!(show["withdrawal_addresses"][0]["address"], "bc1qcold", "{show}");
    // A cap: set and lowered at once, raised only with approvals.
    assert_eq!(s.http("PUT", "/v1/accounts/bin/caps/BTC", Some(&admin), Some(&json!({"cap": "1"}))).0, 200);
    assert_eq!(s.http("PUT", "/v1/accounts/bin/caps/BTC", Some(&admin), Some(&json!({"cap": "0.5"}))).0, 200);
    let raise = waits(&s.http("PUT", "/v1/accounts/bin/caps/BTC", Some(&admin), Some(&json!({"cap": "5"}))));
    let remove = waits(&s.http("PUT", "/v1/accounts/bin/caps/BTC", Some(&admin), Some(&json!({"cap": null}))));
    // Two approvers at once on the last approval: it applies exactly once.
    approve(s, &d.lead, &raise, "pending");
    let (b, c) = (d.b.clone(), d.c.clone());
    let (addr, r) = (s.addr.clone(), raise.clone());
    let racers: Vec<_> = [b, c]
        .into_iter()
        .map(|k| {
            let (addr, r) = (addr.clone(), r.clone());
            std::thread::spawn(move || {
                let resp = reqwest::blocking::Client::new()
                    .post(format!("{addr}/v1/approvals/{r}/approve"))
                    .bearer_auth(k)
                    .send()
                    .unwrap();
                (resp.status().as_u16(), resp.json::<Value>().unwrap())
            })
        })
        .map(|t| t.join().unwrap())
        .collect();
    let applied = racers.iter().filter(|(st, v)| *st == 200 && v["state"] == "applied").count();
    let closed = racers.iter().filter(|(st, v)| *st == 409 && v["error"]["code"] == "approval_closed").count();
    assert_eq!((applied, closed), (1, 1), "{racers:?}");
    let (_, show) = s.http("GET", "/v1/accounts/bin", Some(&admin), None);
    assert_eq!(show["withdrawal_caps"]["BTC"]["per_24h"], "5", "{show}");
    // One rejection closes a request.
    let (st, v) = s.http("POST", &format!("/v1/approvals/{remove}/reject"), Some(&d.b), Some(&json!({"reason": "no"})));
    assert_eq!((st, v["state"].as_str()), (200, Some("rejected")), "{v}");
    assert_error(&s.http("POST", &format!("/v1/approvals/{remove}/approve"), Some(&d.c), None), 409, "approval_closed");
    // An upstream change is staged; the account signs with the old one until approved.
    let (_, cur) = s.http("GET", "/v1/secrets/exchanges/bin?history=true", Some(&admin), None);
    let fields =
        json!({"api_key": "BINANCE-REAL-KEY", "api_secret": "binance-real-secret", "base_url": "http://127.0.0.1:9"});
    let up =
        s.http("PUT", "/v1/secrets/exchanges/bin", Some(&admin), Some(&json!({"data": fields, "type": "binance"})));
    let id = waits(&up);
    let pending = up.1["pending_version"].as_u64().unwrap();
    assert_eq!(proxy(s, &admin, "GET", "bin/api/v3/account", None).0, 200, "still the old upstream");
    approve(s, &d.b, &id, "pending");
    approve(s, &d.c, &id, "applied");
    let (_, after) = s.http("GET", "/v1/secrets/exchanges/bin?history=true", Some(&admin), None);
    assert_eq!(after["current_version"], json!(pending), "{cur} {after}");
    assert_error(&proxy(s, &admin, "GET", "bin/api/v3/account", None), 502, "upstream_unavailable");
    // Unfreezing.
    assert_eq!(s.http("POST", "/v1/accounts/okx/freeze", Some(&admin), None).0, 200);
    let id = waits(&s.http("POST", "/v1/accounts/okx/unfreeze", Some(&admin), None));
    assert_error(&proxy(s, &admin, "GET", "okx/api/v5/account/balance", None), 403, "account_frozen");
    approve(s, &d.b, &id, "pending");
    approve(s, &d.lead, &id, "applied");
    assert_eq!(proxy(s, &admin, "GET", "okx/api/v5/account/balance", None).0, 200);
}

#[test]
fn a_request_expires_and_a_rejected_key_is_revoked() {
    let d = desk();
    let s = &d.s;
    let body = json!({"name": "ops", "scopes": ["account:bin:transfer"], "allow_ips": ["127.0.0.1/32"]});
    let got = s.http("POST", "/v1/keys", Some(&d.lead), Some(&body));
    let id = waits(&got);
    let key_id = got.1["id"].as_str().unwrap().to_string();
    s.set_clock(now_ms() + 25 * 3_600_000);
    assert_error(&s.http("POST", &format!("/v1/approvals/{id}/approve"), Some(&d.b), None), 409, "approval_expired");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, k) = s.http("GET", &format!("/v1/keys/{key_id}"), Some(s.admin()), None);
        if k["state"] == "revoked" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the expired request's key was not revoked: {k}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A rejection revokes the key at once; the requester may withdraw its own request.
    let got = s.http(
        "POST",
        "/v1/keys",
        Some(&d.lead),
        Some(&json!({"name": "ops2", "scopes": ["account:bin:export"], "allow_ips": ["127.0.0.1/32"]})),
    );
    let id = waits(&got);
    let (st, v) = s.http("POST", &format!("/v1/approvals/{id}/reject"), Some(&d.lead), None);
    assert_eq!((st, v["state"].as_str()), (200, Some("rejected")), "{v}");
    let (_, k) = s.http("GET", &format!("/v1/keys/{}", got.1["id"].as_str().unwrap()), Some(s.admin()), None);
    assert_eq!(k["state"], "revoked", "{k}");
    // A key that neither approves nor asked sees nothing of the requests.
    let (_, other) = crate::incident::bot(s, "bot", "bin");
    let (st, list) = s.http("GET", "/v1/approvals", Some(&other), None);
    assert_eq!((st, list["approvals"].as_array().map(Vec::len)), (200, Some(0)), "{list}");
    // The audit log and the alerts saw every step.
    let (_, log) = s.http("GET", "/v1/audit?limit=500", Some(s.admin()), None);
    let steps: Vec<&str> =
        log["entries"].as_array().unwrap().iter().filter_map(|e| e["detail"]["change"].as_str()).collect();
    for want in ["approval_requested", "approved", "applied", "rejected", "expired"] {
        assert!(steps.contains(&want), "{want} missing from the audit log: {steps:?}");
    }
    let (st, verify) = s.http("GET", "/v1/audit/verify", Some(s.admin()), None);
    assert_eq!((st, verify["ok"].as_bool()), (200, Some(true)), "{verify}");
}
