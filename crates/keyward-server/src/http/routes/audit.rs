//! `/v1/audit`: read the audit log and verify its chain (`audit:read`).

use crate::auth::Caller;
use crate::error::{Code, Error};
use crate::http::extract::{body_bytes, parse_json, parse_query};
use crate::http::{ApiResult, AppState};
use axum::Json;
use axum::extract::{Request, State};
use keyward_core::audit::{AuditEntry, Checkpoint};
use keyward_core::clock::rfc3339;
use keyward_core::duration;
use keyward_core::keyring::hex_encode;
use keyward_core::scope::Need;
use keyward_store::AuditQuery;
use serde_json::{Value, json};

fn entry_json(e: &AuditEntry) -> Value {
    json!({
        "seq": e.seq,
        "time": rfc3339(e.time_ms),
        "request_id": e.request_id,
        "key_id": e.key_id,
        "ip": e.ip,
        "action": e.action,
        "target": e.target,
        "class": e.class,
        "decision": e.decision,
        "code": e.code,
        "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null),
        "hash": hex_encode(&e.hash),
    })
}

fn invalid_query(message: &str) -> Error {
    Error::new(Code::InvalidQuery, message)
}

fn since(now_ms: i64, s: &str) -> Result<i64, Error> {
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    Ok(now_ms - duration::parse_secs(s)? as i64 * 1000)
}

fn query(q: &std::collections::HashMap<String, String>, now: i64) -> Result<AuditQuery, Error> {
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<u64>()
            .ok()
            .filter(|l| (1..=100_000).contains(l))
            .ok_or_else(|| invalid_query("limit is 1 to 100000"))?,
        None => 1000,
    };
    let after = q
        .get("after")
        .map(|a| a.parse::<u64>())
        .transpose()
        .map_err(|_| invalid_query("after is a sequence number"))?;
    Ok(AuditQuery {
        from_seq: after.map(|a| a + 1),
        since_ms: q.get("since").map(|s| since(now, s)).transpose()?,
        until_ms: q.get("until").map(|s| since(now, s)).transpose()?,
        key_id: q.get("key").cloned(),
        target_prefix: q.get("account").map(|a| format!("{a} ")),
        decision: q.get("decision").cloned(),
        limit,
        newest: after.is_none(),
    })
}

/// `GET /v1/audit?since=1h&until=…&key=…&account=…&decision=deny&after=SEQ&limit=N`.
pub(crate) async fn list(State(state): State<AppState>, caller: Caller, req: Request) -> ApiResult<Json<Value>> {
    caller.require(Need::AuditRead, "reading the audit log (audit:read)")?;
    let q = parse_query(req.uri().query(), &["since", "until", "key", "account", "decision", "after", "limit"])?;
    let query = query(&q, state.clock.now_ms())?;
    caller.admit().await?;
    let entries: Vec<Value> = state.auditor.entries(&query).await?.iter().map(entry_json).collect();
    Ok(Json(json!({ "entries": entries })))
}

/// `GET|POST /v1/audit/verify`: walks the whole chain and every checkpoint;
/// POST `{"anchor": checkpoint}` also checks a checkpoint kept elsewhere, which
/// catches a log cut back to an earlier point.
pub(crate) async fn verify(State(state): State<AppState>, caller: Caller, req: Request) -> ApiResult<Json<Value>> {
    caller.require(Need::AuditRead, "verifying the audit log (audit:read)")?;
    let bytes = body_bytes(req).await?;
    let anchor: Option<Checkpoint> = if bytes.is_empty() {
        None
    } else {
        let v: Value = parse_json(&bytes)?;
        Some(serde_json::from_value(v.get("anchor").cloned().unwrap_or(Value::Null)).map_err(|_| {
            Error::new(Code::InvalidJson, "anchor must be a checkpoint {seq, hash, time_ms, signature}")
        })?)
    };
    caller.admit().await?;
    let public_key = caller.unsealed.audit_public_key();
    Ok(Json(state.auditor.verify(&public_key, anchor.as_ref()).await?))
}
