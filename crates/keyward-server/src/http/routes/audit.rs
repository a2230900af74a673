//! `/v1/audit`: read the audit log and verify its chain (`audit:read`).

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::request::{body_bytes, parse_json, parse_query};
use crate::routes::timestamp;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Request, State};
use keyward_core::audit::{AuditEntry, Checkpoint, genesis, public_key, verify_chain, verify_checkpoint};
use keyward_core::duration;
use keyward_core::scope::Need;
use keyward_store::AuditQuery;
use serde_json::{Value, json};

fn entry_json(e: &AuditEntry) -> Value {
    json!({
        "seq": e.seq,
        "time": timestamp(e.time_ms),
        "request_id": e.request_id,
        "key_id": e.key_id,
        "ip": e.ip,
        "action": e.action,
        "target": e.target,
        "class": e.class,
        "decision": e.decision,
        "code": e.code,
        "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null),
        "hash": keyward_core::keyring::hex_encode(&e.hash),
    })
}

fn since(now_ms: i64, s: &str) -> ApiResult<i64> {
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    Ok(now_ms - duration::parse_secs(s)? as i64 * 1000)
}

/// `GET /v1/audit?since=1h&until=…&key=…&account=…&decision=deny&after=SEQ&limit=N`.
pub async fn list(State(state): State<AppState>, who: Principal, req: Request) -> ApiResult<Json<Value>> {
    who.require(Need::AuditRead, "reading the audit log (audit:read)")?;
    let q = parse_query(req.uri().query(), &["since", "until", "key", "account", "decision", "after", "limit"])?;
    let now = state.clock.now_ms();
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<u64>()
            .ok()
            .filter(|l| (1..=100_000).contains(l))
            .ok_or_else(|| ApiError::bad("invalid_query", "limit is 1 to 100000"))?,
        None => 1000,
    };
    let after = q
        .get("after")
        .map(|a| a.parse::<u64>())
        .transpose()
        .map_err(|_| ApiError::bad("invalid_query", "after is a sequence number"))?;
    let query = AuditQuery {
        from_seq: after.map(|a| a + 1),
        since_ms: q.get("since").map(|s| since(now, s)).transpose()?,
        until_ms: q.get("until").map(|s| since(now, s)).transpose()?,
        key_id: q.get("key").cloned(),
        target_prefix: q.get("account").map(|a| format!("{a} ")),
        decision: q.get("decision").cloned(),
        limit,
        newest: after.is_none(),
    };
    let entries: Vec<Value> = state.store.audit_entries(&query).await?.iter().map(entry_json).collect();
    Ok(Json(json!({ "entries": entries })))
}

/// `GET|POST /v1/audit/verify`: walks the whole chain and every checkpoint;
/// POST `{"anchor": checkpoint}` also checks a checkpoint kept elsewhere, which
/// catches a log cut back to an earlier point.
pub async fn verify(State(state): State<AppState>, who: Principal, req: Request) -> ApiResult<Json<Value>> {
    who.require(Need::AuditRead, "verifying the audit log (audit:read)")?;
    let bytes = body_bytes(req).await?;
    let anchor: Option<Checkpoint> = if bytes.is_empty() {
        None
    } else {
        let v: Value = parse_json(&bytes)?;
        Some(serde_json::from_value(v.get("anchor").cloned().unwrap_or(Value::Null)).map_err(|_| {
            ApiError::bad("invalid_json", "anchor must be a checkpoint {seq, hash, time_ms, signature}")
        })?)
    };
    let pk = public_key(&keyward_core::audit::signing_key(who.unsealed.keyring.root()));
    let mut problems: Vec<Value> = Vec::new();
    let mut count = 0u64;
    let mut prev = (1u64, genesis());
    let mut hashes = std::collections::HashMap::new();
    // Page through the log so a large one is never held whole.
    loop {
        let page = state
            .store
            .audit_entries(&AuditQuery { from_seq: Some(prev.0), limit: 50_000, ..Default::default() })
            .await?;
        if page.is_empty() {
            break;
        }
        if let Err(b) = verify_chain(&page, prev.0, &prev.1) {
            problems.push(json!({"seq": b.seq, "reason": b.reason}));
            break;
        }
        for e in &page {
            hashes.insert(e.seq, keyward_core::keyring::hex_encode(&e.hash));
        }
        count += page.len() as u64;
        let last = page.last().map(|e| (e.seq + 1, e.hash.clone())).unwrap_or(prev.clone());
        prev = last;
    }
    // The end of the log as stored (a break above may stop the walk early).
    let last_seq = state.store.audit_head().await?.map(|(s, _)| s).unwrap_or(0);
    let checkpoints = state.store.audit_checkpoints().await?;
    let mut check = |c: &Checkpoint, what: &str| {
        if !verify_checkpoint(&pk, c) {
            problems.push(json!({"seq": c.seq, "reason": format!("{what} at {} has a bad signature", c.seq)}));
        } else if c.seq > last_seq {
            problems.push(json!({"seq": last_seq + 1, "reason": format!("{what} covers entry {} but the log ends at {last_seq}: it was cut back", c.seq)}));
        } else if hashes.get(&c.seq).is_some_and(|h| *h != c.hash) {
            problems
                .push(json!({"seq": c.seq, "reason": format!("{what} at {} does not match the entry's hash", c.seq)}));
        }
    };
    for c in &checkpoints {
        check(c, "checkpoint");
    }
    if let Some(a) = &anchor {
        check(a, "anchor");
    }
    problems.sort_by_key(|p| p["seq"].as_u64().unwrap_or(u64::MAX));
    Ok(Json(json!({
        "ok": problems.is_empty(),
        "entries": count,
        "checkpoints": checkpoints.len(),
        "last_checkpoint": checkpoints.last(),
        "first_broken": problems.first().cloned(),
        "problems": problems,
    })))
}
