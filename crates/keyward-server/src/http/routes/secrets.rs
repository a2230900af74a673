//! `/v1/secrets`: versioned secrets under envelope encryption.
//!
//! Scopes are checked before existence, so a key learns nothing about paths
//! it may not read. Values leave only in the body of a successful read; an
//! exchange account's secret fields only with `account:<name>:export`; a
//! field marked non-exportable (a private key born in keyward) never.

use crate::auth::Caller;
use crate::controls::INTERNAL_PREFIX;
use crate::error::{Code, Error};
use crate::exchange::{SECRET_FIELDS, account_name};
use crate::http::extract::{body_bytes, parse_json, parse_query, path_after};
use crate::http::{ApiResult, AppState};
use crate::secrets::{Destroy, PutRequest, StepRequest, VersionsRequest, parse_versions};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use keyward_core::clock::rfc3339;
use keyward_core::scope::{Class, Need, Scope};
use keyward_core::secret::NON_EXPORTABLE;
use keyward_core::secret_path::{SecretPath, check_prefix};
use keyward_store::{AuditQuery, SecretMeta, VersionRecord};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

const PREFIX: &str = "/v1/secrets/";

pub(super) fn meta_json(m: &SecretMeta) -> Value {
    let rotation_due = m.rotation_period_s.map(|p| rfc3339(m.updated_ms.saturating_add(p.saturating_mul(1000))));
    json!({
        "type": m.kind,
        "current_version": m.current_version,
        "pending_version": m.pending_version,
        "previous_version": m.previous_version,
        "created_at": rfc3339(m.created_ms),
        "updated_at": rfc3339(m.updated_ms),
        "rotation_period_s": m.rotation_period_s,
        "rotation_due": rotation_due,
    })
}

/// A version's stage: `pending`, `current`, `previous` (superseded, still
/// readable) or `destroyed`.
fn stage(m: &SecretMeta, v: &VersionRecord) -> &'static str {
    if v.destroyed {
        "destroyed"
    } else if m.pending_version == Some(v.version) {
        "pending"
    } else if m.current_version == v.version {
        "current"
    } else {
        "previous"
    }
}

fn version_json(m: &SecretMeta, v: &VersionRecord) -> Value {
    json!({
        "version": v.version,
        "state": stage(m, v),
        "rollback_target": m.previous_version == Some(v.version),
        "created_at": rfc3339(v.created_ms),
        "deleted_at": v.deleted_ms.map(rfc3339),
        "destroyed": v.destroyed,
    })
}

/// `GET /v1/secrets?prefix=P`: paths the key may read or write.
pub(crate) async fn list(State(state): State<AppState>, caller: Caller, req: Request) -> ApiResult<Json<Value>> {
    let q = parse_query(req.uri().query(), &["prefix"])?;
    let prefix = q.get("prefix").map(String::as_str).unwrap_or("");
    check_prefix(prefix)?;
    if !caller.scopes().iter().any(|s| matches!(s, Scope::SecretRead(_) | Scope::SecretWrite(_))) {
        return Err(Error::scope_missing("this key has no secret:read or secret:write scope").into());
    }
    caller.admit().await?;
    let items: Vec<Value> = state
        .secrets
        .list(prefix)
        .await?
        .iter()
        .filter(|m| !m.path.starts_with(INTERNAL_PREFIX))
        .filter(|m| caller.may(Need::SecretRead(&m.path)) || caller.may(Need::SecretWrite(&m.path)))
        .map(|m| {
            let mut v = meta_json(m);
            v["path"] = json!(m.path);
            v
        })
        .collect();
    Ok(Json(json!({ "secrets": items })))
}

/// Every method on `/v1/secrets/{path}`.
pub(crate) async fn secret(State(state): State<AppState>, caller: Caller, req: Request) -> ApiResult<Response> {
    let path = SecretPath::parse(&path_after(req.uri().path(), PREFIX)?)?;
    caller.record.target(path.as_str());
    if path.as_str().starts_with(INTERNAL_PREFIX) {
        // Account controls and approvals change only through their own
        // routes, each with its authorization and approvals.
        return Err(Error::new(
            Code::InvalidPath,
            format!("paths under {INTERNAL_PREFIX} are keyward's own (account controls, approvals): use `keyward account` and `keyward approvals`"),
        )
        .into());
    }
    let query = req.uri().query().map(str::to_string);
    match req.method().clone() {
        Method::GET => get(&state, &caller, &path, query.as_deref()).await,
        Method::PUT => {
            parse_query(query.as_deref(), &[])?;
            let body: PutRequest = parse_json(&body_bytes(req).await?)?;
            write(&state, &caller, &path, body).await
        }
        Method::POST => {
            let q = parse_query(query.as_deref(), &["action"])?;
            let bytes = body_bytes(req).await?;
            match q.get("action").map(String::as_str) {
                None => write(&state, &caller, &path, parse_json(&bytes)?).await,
                Some("undelete") => undelete(&state, &caller, &path, parse_json(&bytes)?).await,
                Some("destroy") => destroy(&state, &caller, &path, parse_json(&bytes)?).await,
                Some("rotate") => super::rotate::rotate(&state, &caller, &path, parse_json(&bytes)?).await,
                Some("rollback") => {
                    let body: StepRequest = if bytes.is_empty() { StepRequest::default() } else { parse_json(&bytes)? };
                    super::rotate::rollback(&state, &caller, &path, body.no_wait).await
                }
                Some("abandon") => super::rotate::abandon(&state, &caller, &path).await,
                Some(other) => Err(Error::new(
                    Code::InvalidQuery,
                    format!("unknown action {other:?}; accepted: undelete, destroy, rotate, rollback, abandon"),
                )
                .into()),
            }
        }
        Method::DELETE => {
            let q = parse_query(query.as_deref(), &["versions"])?;
            delete(&state, &caller, &path, q.get("versions")).await
        }
        _ => Err(Error::new(Code::MethodNotAllowed, "secrets take GET, PUT, POST and DELETE").into()),
    }
}

/// Writing needs `secret:write`; changing an exchange account also
/// `account:<name>:admin`, and is on record as an `admin` call (durable
/// before the answer, and it alerts).
pub(super) fn require_write(caller: &Caller, path: &SecretPath, verb: &str) -> Result<(), Error> {
    caller.require(Need::SecretWrite(path.as_str()), &format!("{verb} {path}"))?;
    if let Some(name) = account_name(path.as_str()) {
        caller.record.class(Class::Admin);
        caller.require(
            Need::Account(name, Class::Admin),
            &format!("{verb} exchange account {name} (account:{name}:admin)"),
        )?;
    }
    Ok(())
}

async fn get(state: &AppState, caller: &Caller, path: &SecretPath, query: Option<&str>) -> ApiResult<Response> {
    let q = parse_query(query, &["version", "field", "history"])?;
    let version = match q.get("version") {
        Some(v) => Some(
            v.parse::<u64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| Error::new(Code::InvalidQuery, "version must be a number from 1"))?,
        ),
        None => None,
    };
    let account = account_name(path.as_str());
    // An account can be read with secret:read (secret fields withheld) or
    // export; a version of it other than the current one (previous,
    // pending) only with sys:admin. Some scope on the path comes first, so
    // a caller without one learns nothing about its versions.
    let export = account.filter(|name| caller.may(Need::Account(name, Class::Export)));
    let admin_read = account.is_some() && version.is_some() && caller.may(Need::SysAdmin);
    if export.is_none() && !admin_read {
        caller.require(Need::SecretRead(path.as_str()), &format!("reading {path}"))?;
    }
    let other_version = match (account, version) {
        (Some(_), Some(asked)) => state.secrets.meta(path.as_str()).await?.is_none_or(|m| m.current_version != asked),
        _ => false,
    };
    if other_version {
        let name = account.unwrap_or_default();
        caller.require(
            Need::SysAdmin,
            &format!("reading a version of exchange account {name} other than the current one (sys:admin)"),
        )?;
        caller.record.class(Class::Export);
    } else if export.is_some() {
        caller.record.class(Class::Export);
    } else {
        caller.require(Need::SecretRead(path.as_str()), &format!("reading {path}"))?;
        if let (Some(name), Some(f)) = (account, q.get("field"))
            && SECRET_FIELDS.contains(&f.as_str())
        {
            return Err(
                Error::scope_missing(format!("{f} of exchange account {name} needs account:{name}:export")).into()
            );
        }
    }
    caller.admit().await?;
    if q.get("history").is_some_and(|h| h == "true" || h.is_empty()) {
        let (meta, versions) = state.secrets.history(path.as_str()).await?;
        let mut body = meta_json(&meta);
        body["path"] = json!(path.as_str());
        body["versions"] = Value::Array(versions.iter().map(|v| version_json(&meta, v)).collect());
        body["changes"] = json!(changes(state, path.as_str()).await?);
        return Ok(Json(body).into_response());
    }
    let v = state.secrets.read(&caller.unsealed, path.as_str(), version).await?;
    // An exchange account's secret fields leave only with account:<name>:export,
    // or for another version, sys:admin (checked above).
    let withheld: &[&str] = match account {
        Some(_) if export.is_none() && !other_version => SECRET_FIELDS,
        _ => &[],
    };
    read_answer(path, &v, withheld, &q)
}

fn read_answer(
    path: &SecretPath,
    v: &crate::secrets::Version,
    withheld: &[&str],
    q: &HashMap<String, String>,
) -> ApiResult<Response> {
    // Non-exportable fields (a private key made by `account keygen`) and
    // the marker that lists them never leave, whatever the scope.
    let sealed_in = v.data.non_exportable();
    if let Some(f) = q.get("field")
        && (sealed_in.contains(&f.as_str()) || f == NON_EXPORTABLE)
    {
        return Err(Error::new(
            Code::NonExportable,
            format!("{f} of {path} was made inside keyward and is non-exportable: no scope reads it back"),
        )
        .into());
    }
    let mut fields = Map::new();
    let mut redacted = Vec::new();
    for (k, value) in &v.data.0 {
        if q.get("field").is_some_and(|f| f != k) || k == NON_EXPORTABLE || sealed_in.contains(&k.as_str()) {
            continue;
        }
        if withheld.contains(&k.as_str()) {
            redacted.push(k.clone());
        } else {
            fields.insert(k.clone(), Value::String(value.expose().to_string()));
        }
    }
    if let Some(f) = q.get("field") {
        if redacted.contains(f) {
            let name = account_name(path.as_str()).unwrap_or_default();
            return Err(
                Error::scope_missing(format!("{f} of exchange account {name} needs account:{name}:export")).into()
            );
        }
        if !fields.contains_key(f) {
            return Err(Error::not_found(format!("{path} has no field {f:?}")).into());
        }
    }
    let mut metadata = meta_json(&v.meta);
    if !redacted.is_empty() {
        metadata["withheld_fields"] = json!(redacted);
    }
    if !sealed_in.is_empty() {
        metadata["non_exportable_fields"] = json!(sealed_in);
    }
    metadata["version_created_at"] = json!(rfc3339(v.created_ms));
    Ok(Json(json!({"path": path.as_str(), "version": v.version, "data": fields, "metadata": metadata})).into_response())
}

async fn write(state: &AppState, caller: &Caller, path: &SecretPath, body: PutRequest) -> ApiResult<Response> {
    require_write(caller, path, "writing")?;
    let new = body.plan()?;
    if account_name(path.as_str()).is_some() {
        let stored = state.secrets.meta(path.as_str()).await?;
        let kind = new.kind.clone().or(stored.as_ref().and_then(|m| m.kind.clone())).ok_or_else(|| {
            Error::new(Code::AccountInvalid, "an exchange account needs --type (binance, okx, bybit, kraken, kucoin)")
        })?;
        state.exchanges.validate(&kind, &new.data)?;
        let waits = super::upstream::must_wait(state, caller, path.as_str(), &new.data).await?;
        if waits {
            state.approvals.check_available(&caller.key.id)?;
        }
        if let (true, Some(m)) = (waits, &stored) {
            if let Some(p) = m.pending_version {
                return Err(Error::new(
                    Code::RotationPending,
                    format!("version {p} of {path} is pending: finish it or drop it (--abandon) before changing the upstream"),
                )
                .into());
            }
            if new.cas.is_some_and(|c| c != m.latest_version) {
                return Err(Error::new(
                    Code::CasMismatch,
                    format!("check-and-set failed: the secret is at version {}", m.latest_version),
                )
                .into());
            }
        }
        if waits {
            // Staged as pending: the approval that completes its request promotes it.
            let admitted = caller.admit().await?;
            let plan = crate::secrets::RotatePlan {
                changes: None,
                kind: new.kind.clone(),
                rotation_period_s: new.rotation_period_s,
            };
            let staging = crate::secrets::Staging { meta: stored, data: new.data, replaces: None };
            let (_, version) = state.secrets.stage(&admitted, &caller.unsealed, path.as_str(), staging, &plan).await?;
            return Ok(
                super::upstream::request_promotion(state, caller, &admitted, path.as_str(), version, true).await?
            );
        }
    }
    let admitted = caller.admit().await?;
    let (meta, version) = state.secrets.write(&admitted, &caller.unsealed, path.as_str(), new).await?;
    let mut body = meta_json(&meta);
    body["path"] = json!(path.as_str());
    body["version"] = json!(version);
    Ok(Json(body).into_response())
}

/// A secret's changes from the audit log, oldest first: time, what changed,
/// which version, the key that made the change and its address.
async fn changes(state: &AppState, path: &str) -> Result<Vec<Value>, Error> {
    let query = AuditQuery { target_prefix: Some(path.to_string()), limit: 1000, ..AuditQuery::default() };
    let entries = state.auditor.entries(&query).await?;
    Ok(entries
        .iter()
        .filter(|e| e.target == path && e.decision == "allow")
        .filter(|e| ["secrets.", "accounts.", "rotation."].iter().any(|a| e.action.starts_with(a)))
        .filter_map(|e| {
            let mut d = serde_json::from_str::<Value>(&e.detail).ok()?;
            d.get("change")?.as_str()?;
            d["time"] = json!(rfc3339(e.time_ms));
            d["by"] = json!(e.key_id);
            d["ip"] = json!(e.ip);
            Some(d)
        })
        .collect())
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    path: &SecretPath,
    versions: Option<&String>,
) -> ApiResult<Response> {
    require_write(caller, path, "deleting")?;
    let versions = versions.map(|v| parse_versions(v)).transpose()?;
    let admitted = caller.admit().await?;
    let changed = state.secrets.delete(&admitted, path.as_str(), versions).await?;
    Ok(Json(json!({"path": path.as_str(), "deleted": changed})).into_response())
}

async fn undelete(state: &AppState, caller: &Caller, path: &SecretPath, req: VersionsRequest) -> ApiResult<Response> {
    require_write(caller, path, "changing")?;
    let admitted = caller.admit().await?;
    let changed = state.secrets.undelete(&admitted, path.as_str(), req.versions).await?;
    Ok(Json(json!({"path": path.as_str(), "undeleted": changed})).into_response())
}

async fn destroy(state: &AppState, caller: &Caller, path: &SecretPath, req: VersionsRequest) -> ApiResult<Response> {
    require_write(caller, path, "changing")?;
    let what = match (req.all, req.versions.is_empty()) {
        (true, true) => Destroy::All,
        (false, false) => Destroy::Versions(req.versions),
        _ => {
            return Err(Error::invalid(
                "destroy needs either {\"versions\": [..]} or {\"all\": true}, not both or neither",
            )
            .into());
        }
    };
    let all = matches!(what, Destroy::All);
    let admitted = caller.admit().await?;
    let changed = state.secrets.destroy(&admitted, path.as_str(), what).await?;
    let destroyed = if all { json!("all") } else { json!(changed) };
    Ok(Json(json!({"path": path.as_str(), "destroyed": destroyed})).into_response())
}
