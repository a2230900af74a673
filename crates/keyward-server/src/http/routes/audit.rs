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

/// `GET|POST /v1/audit/verify`: walks the chain from the base (or, with
/// `since_checkpoint`, from the checkpoint the last verification reached)
/// and every checkpoint; POST `{"anchor": checkpoint}` also checks a
/// checkpoint kept elsewhere, which catches a log cut back to an earlier point.
pub(crate) async fn verify(State(state): State<AppState>, caller: Caller, req: Request) -> ApiResult<Json<Value>> {
    caller.require(Need::AuditRead, "verifying the audit log (audit:read)")?;
    let bytes = body_bytes(req).await?;
    let (mut anchor, mut since_checkpoint) = (None, false);
    if !bytes.is_empty() {
        let v: Value = parse_json(&bytes)?;
        if let Some(a) = v.get("anchor").filter(|a| !a.is_null()) {
            anchor = Some(serde_json::from_value::<Checkpoint>(a.clone()).map_err(|_| {
                Error::new(Code::InvalidJson, "anchor must be a checkpoint {seq, hash, time_ms, signature}")
            })?);
        }
        since_checkpoint = match v.get("since_checkpoint") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(Error::new(Code::InvalidJson, "since_checkpoint is true or false").into()),
        };
    }
    caller.admit().await?;
    let public_key = caller.unsealed.audit_public_key();
    Ok(Json(state.auditor.verify(&public_key, anchor.as_ref(), since_checkpoint).await?))
}

/// `GET /v1/audit/archive?before=30d`: the archive (gzip, JSON lines) of
/// every entry after the base up to the newest signed checkpoint made at or
/// before then, streamed. It removes nothing: `POST /v1/audit/prune` does,
/// once the archive is kept.
pub(crate) async fn archive(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    caller.require(Need::AuditRead, "archiving the audit log (audit:read)")?;
    let q = parse_query(req.uri().query(), &["before"])?;
    let now = state.clock.now_ms();
    let before = q.get("before").ok_or_else(|| invalid_query("before is required (30d, or RFC 3339)"))?;
    let cutoff = since(now, before)?;
    caller.admit().await?;
    let public_key = caller.unsealed.audit_public_key();
    let plan =
        crate::audit::retention::plan(state.store.as_ref(), &public_key, cutoff, now).await?.ok_or_else(|| {
            Error::new(
                Code::InvalidState,
                format!(
                    "nothing to archive: no signed checkpoint at or before {} after the entries already archived",
                    rfc3339(cutoff)
                ),
            )
        })?;
    caller.record.detail(
        json!({"first_seq": plan.header.first_seq, "last_seq": plan.header.last_seq, "entries": plan.header.entries})
            .to_string(),
    );
    let name = crate::audit::retention::file_name(&plan.header);
    let headers = [
        (axum::http::header::CONTENT_TYPE, "application/gzip".to_string()),
        (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        (axum::http::HeaderName::from_static("x-keyward-archive-first"), plan.header.first_seq.to_string()),
        (axum::http::HeaderName::from_static("x-keyward-archive-last"), plan.header.last_seq.to_string()),
        (axum::http::HeaderName::from_static("x-keyward-audit-public-key"), hex_encode(&public_key)),
    ];
    let rx = crate::audit::retention::stream(state.store.clone(), plan);
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    Ok((headers, axum::body::Body::from_stream(body)).into_response())
}

/// `POST /v1/audit/prune` `{"through": SEQ, "archive_sha256": HEX}`: removes
/// every entry up to `through`, which must carry a signed checkpoint (the
/// end of an archive kept elsewhere). On the log, durably, first. `sys:admin`.
pub(crate) async fn prune(State(state): State<AppState>, caller: Caller, req: Request) -> ApiResult<Json<Value>> {
    caller.require(Need::SysAdmin, "pruning the audit log (sys:admin)")?;
    let v: Value = parse_json(&body_bytes(req).await?)?;
    let through =
        v["through"].as_u64().ok_or_else(|| Error::new(Code::InvalidJson, "through is an entry's sequence number"))?;
    let sha = v.get("archive_sha256").and_then(Value::as_str).map(str::to_string);
    caller.admit().await?;
    let public_key = caller.unsealed.audit_public_key();
    let detail = json!({"change": "audit_prune", "through": through, "archive_sha256": sha});
    super::record_change(&state, &caller, Some(&format!("audit through {through}")), detail.to_string()).await?;
    let removed = crate::audit::retention::prune(state.store.as_ref(), &public_key, through).await?;
    Ok(Json(json!({"removed": removed, "base": through})))
}
