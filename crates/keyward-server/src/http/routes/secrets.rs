//! `/v1/secrets`: versioned secrets under envelope encryption.
//!
//! Scopes are checked before existence, so a key learns nothing about paths
//! it may not read. Values leave only in the body of a successful read.

use crate::accounts::{self, account_name};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::request::{body_bytes, parse_json, parse_query, path_after};
use crate::routes::timestamp;
use crate::state::AppState;
use crate::writes::WriteJob;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_core::duration;
use keyward_core::envelope;
use keyward_core::scope::{Class, Need, Scope};
use keyward_core::secret::{SecretData, SecretValue, check_field_name};
use keyward_core::secret_path::{SecretPath, check_prefix};
use keyward_store::{SecretMeta, VersionRecord};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

const PREFIX: &str = "/v1/secrets/";

/// Secret fields from JSON: string values only, duplicate names refused.
struct Fields(SecretData);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Fields, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(k) = m.next_key::<String>()? {
                    let v: String = m.next_value()?;
                    if out.insert(k.clone(), SecretValue::new(v)).is_some() {
                        return Err(serde::de::Error::custom(format_args!("duplicate key {k:?} in data")));
                    }
                }
                Ok(Fields(SecretData(out)))
            }
        }
        d.deserialize_map(V)
    }
}

/// Body of a secret write.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRequest {
    /// Field name → value (strings).
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    data: Fields,
    #[serde(rename = "type")]
    kind: Option<String>,
    cas: Option<u64>,
    rotation_period: Option<String>,
}

impl fmt::Debug for PutRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutRequest")
            .field("data", &"[redacted]")
            .field("kind", &self.kind)
            .field("cas", &self.cas)
            .field("rotation_period", &self.rotation_period)
            .finish()
    }
}

/// Body of undelete and destroy.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionsRequest {
    #[serde(default)]
    versions: Vec<u64>,
    #[serde(default)]
    all: bool,
}

fn meta_json(m: &SecretMeta) -> Value {
    let rotation_due = m.rotation_period_s.map(|p| timestamp(m.updated_ms.saturating_add(p.saturating_mul(1000))));
    json!({
        "type": m.kind,
        "current_version": m.current_version,
        "created_at": timestamp(m.created_ms),
        "updated_at": timestamp(m.updated_ms),
        "rotation_period_s": m.rotation_period_s,
        "rotation_due": rotation_due,
    })
}

fn version_json(v: &VersionRecord) -> Value {
    json!({
        "version": v.version,
        "created_at": timestamp(v.created_ms),
        "deleted_at": v.deleted_ms.map(timestamp),
        "destroyed": v.destroyed,
    })
}

fn parse_versions(s: &str) -> ApiResult<Vec<u64>> {
    s.split(',')
        .map(|p| p.trim().parse::<u64>().ok().filter(|v| *v > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ApiError::bad("invalid_query", "versions must be a comma-separated list of numbers from 1"))
}

fn no_secret(path: &SecretPath) -> ApiError {
    ApiError::not_found(format!("no secret at {path}"))
}

/// `GET /v1/secrets?prefix=P`: paths the key may read or write.
pub async fn list(State(state): State<AppState>, who: Principal, req: Request) -> ApiResult<Json<Value>> {
    let q = parse_query(req.uri().query(), &["prefix"])?;
    let prefix = q.get("prefix").map(String::as_str).unwrap_or("");
    check_prefix(prefix)?;
    let has_secret_scope =
        who.key.policy.scopes.iter().any(|s| matches!(s, Scope::SecretRead(_) | Scope::SecretWrite(_)));
    if !has_secret_scope {
        return Err(ApiError::scope_missing("this key has no secret:read or secret:write scope"));
    }
    let items: Vec<Value> = state
        .store
        .list_secrets(prefix)
        .await?
        .iter()
        .filter(|m| who.may(Need::SecretRead(&m.path)) || who.may(Need::SecretWrite(&m.path)))
        .map(|m| {
            let mut v = meta_json(m);
            v["path"] = json!(m.path);
            v
        })
        .collect();
    Ok(Json(json!({ "secrets": items })))
}

/// Every method on `/v1/secrets/{path}`.
pub async fn secret(State(state): State<AppState>, who: Principal, req: Request) -> ApiResult<Response> {
    let raw = path_after(req.uri().path(), PREFIX)?;
    let path = SecretPath::parse(&raw)?;
    let changes = req.method() != Method::GET;
    let answer = secret_op(&state, &who, &path, req).await;
    if changes {
        who.unsealed.forget_secret(path.as_str());
        if let Some(name) = account_name(path.as_str()) {
            who.unsealed.forget_account(name);
        }
    }
    answer
}

async fn secret_op(state: &AppState, who: &Principal, path: &SecretPath, req: Request) -> ApiResult<Response> {
    let (state, who, path) = (state.clone(), who.clone(), path.clone());
    let query = req.uri().query().map(str::to_string);
    match req.method().clone() {
        Method::GET => {
            let q = parse_query(query.as_deref(), &["version", "field", "history"])?;
            match account_name(path.as_str()) {
                // An account can be read with secret:read (secret fields withheld) or export.
                Some(name) if who.may(Need::Account(name, Class::Export)) => {
                    crate::audit::note(req.extensions(), |c| {
                        c.class = "export".into();
                        c.sensitive = true;
                    });
                }
                _ => who.require(Need::SecretRead(path.as_str()), &format!("reading {path}"))?,
            }
            if q.get("history").is_some_and(|h| h == "true" || h.is_empty()) {
                return history(&state, &path).await;
            }
            read(&state, &who, &path, &q).await
        }
        Method::PUT => {
            parse_query(query.as_deref(), &[])?;
            require_write(&who, &path, "writing")?;
            let body: PutRequest = parse_json(&body_bytes(req).await?)?;
            write(&state, &who, &path, body).await
        }
        Method::POST => {
            let q = parse_query(query.as_deref(), &["action"])?;
            require_write(&who, &path, "changing")?;
            let bytes = body_bytes(req).await?;
            match q.get("action").map(String::as_str) {
                None => write(&state, &who, &path, parse_json(&bytes)?).await,
                Some("undelete") => undelete(&state, &path, parse_json(&bytes)?).await,
                Some("destroy") => destroy(&state, &path, parse_json(&bytes)?).await,
                Some(other) => Err(ApiError::bad(
                    "invalid_query",
                    format!("unknown action {other:?}; accepted: undelete, destroy"),
                )),
            }
        }
        Method::DELETE => {
            let q = parse_query(query.as_deref(), &["versions"])?;
            require_write(&who, &path, "deleting")?;
            delete(&state, &path, q.get("versions")).await
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "secrets take GET, PUT, POST and DELETE",
        )),
    }
}

/// Writing needs `secret:write`; changing an exchange account also `account:<name>:admin`.
fn require_write(who: &Principal, path: &SecretPath, verb: &str) -> ApiResult<()> {
    who.require(Need::SecretWrite(path.as_str()), &format!("{verb} {path}"))?;
    if let Some(name) = account_name(path.as_str()) {
        who.require(
            Need::Account(name, Class::Admin),
            &format!("{verb} exchange account {name} (account:{name}:admin)"),
        )?;
    }
    Ok(())
}

async fn read(
    state: &AppState,
    who: &Principal,
    path: &SecretPath,
    q: &HashMap<String, String>,
) -> ApiResult<Response> {
    let asked = match q.get("version") {
        Some(v) => Some(
            v.parse::<u64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| ApiError::bad("invalid_query", "version must be a number from 1"))?,
        ),
        None => None,
    };
    // The current version of a secret is served from memory once decrypted;
    // every change to the path drops it (see `secret`).
    let cached = if asked.is_none() {
        who.unsealed.secrets.read().ok().and_then(|c| c.get(path.as_str()).cloned())
    } else {
        None
    };
    let current = match cached {
        Some(c) => c,
        None => {
            let generation = who.unsealed.secrets_generation();
            let meta = state.store.secret_meta(path.as_str()).await?.ok_or_else(|| no_secret(path))?;
            let version = asked.unwrap_or(meta.current_version);
            let rec = state
                .store
                .version(path.as_str(), version)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("{path} has no version {version}")))?;
            if rec.destroyed {
                return Err(ApiError::new(
                    StatusCode::GONE,
                    "secret_destroyed",
                    format!("version {version} of {path} was destroyed"),
                ));
            }
            if rec.deleted_ms.is_some() {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "secret_deleted",
                    format!("version {version} of {path} is deleted (undelete it to read it)"),
                ));
            }
            let blob = rec.ciphertext.as_deref().ok_or_else(|| ApiError::internal("version without ciphertext"))?;
            let plain = envelope::open(&who.unsealed.keyring, path.as_str(), version, blob)?;
            let loaded = std::sync::Arc::new(crate::state::CachedSecret {
                meta,
                version,
                version_created_ms: rec.created_ms,
                data: SecretData::decode(&plain)?,
            });
            if asked.is_none() {
                who.unsealed.cache_secret(path.as_str(), generation, loaded.clone());
            }
            loaded
        }
    };
    let (meta, version, data) = (&current.meta, current.version, &current.data);
    // An exchange account's secret fields leave only with account:<name>:export.
    let withheld: &[&str] = match account_name(path.as_str()) {
        Some(name) if !who.may(Need::Account(name, Class::Export)) => accounts::SECRET_FIELDS,
        _ => &[],
    };
    let mut fields = Map::new();
    let mut redacted = Vec::new();
    for (k, v) in &data.0 {
        if q.get("field").is_some_and(|f| f != k) {
            continue;
        }
        if withheld.contains(&k.as_str()) {
            redacted.push(k.clone());
        } else {
            fields.insert(k.clone(), Value::String(v.expose().to_string()));
        }
    }
    if let Some(f) = q.get("field") {
        if redacted.contains(f) {
            let name = account_name(path.as_str()).unwrap_or_default();
            return Err(ApiError::scope_missing(format!("{f} of exchange account {name} needs account:{name}:export")));
        }
        if !fields.contains_key(f) {
            return Err(ApiError::not_found(format!("{path} has no field {f:?}")));
        }
    }
    let mut metadata = meta_json(meta);
    if !redacted.is_empty() {
        metadata["withheld_fields"] = json!(redacted);
    }
    metadata["version_created_at"] = json!(timestamp(current.version_created_ms));
    Ok(Json(json!({"path": path.as_str(), "version": version, "data": fields, "metadata": metadata})).into_response())
}

async fn history(state: &AppState, path: &SecretPath) -> ApiResult<Response> {
    let meta = state.store.secret_meta(path.as_str()).await?.ok_or_else(|| no_secret(path))?;
    let versions: Vec<Value> = state.store.versions(path.as_str()).await?.iter().map(version_json).collect();
    let mut body = meta_json(&meta);
    body["path"] = json!(path.as_str());
    body["versions"] = Value::Array(versions);
    Ok(Json(body).into_response())
}

fn check_type(kind: &str) -> ApiResult<()> {
    let ok = (1..=32).contains(&kind.len())
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad("invalid_type", "type must be 1 to 32 lower-case letters, digits, '-' or '_'"))
    }
}

async fn write(state: &AppState, who: &Principal, path: &SecretPath, req: PutRequest) -> ApiResult<Response> {
    let data = req.data.0;
    if data.0.is_empty() {
        return Err(ApiError::bad("invalid_field", "a secret needs at least one field"));
    }
    for name in data.0.keys() {
        check_field_name(name)?;
    }
    if let Some(k) = &req.kind {
        check_type(k)?;
    }
    if account_name(path.as_str()).is_some() {
        let stored = state.store.secret_meta(path.as_str()).await?.and_then(|m| m.kind);
        let kind = req.kind.clone().or(stored).ok_or_else(|| {
            ApiError::bad("account_invalid", "an exchange account needs --type (binance, okx, bybit, kraken, kucoin)")
        })?;
        accounts::validate(&kind, &data, &state.config.allow_upstream)?;
    }
    let rotation_period_s = req.rotation_period.as_deref().map(duration::parse_secs).transpose()?.map(|s| s as i64);
    let plain = data.encode();
    // The node's writer assigns the version and group-commits (see
    // `writes`). Without check-and-set, a write that lost to another node
    // only moves the version on, so it goes again.
    for _ in 0..16 {
        let job = WriteJob {
            path: path.as_str().to_string(),
            plain: plain.clone(),
            cas: req.cas,
            kind: req.kind.clone(),
            rotation_period_s,
            unsealed: who.unsealed.clone(),
        };
        match state.writer.write(job).await {
            Ok((meta, version)) => {
                let mut body = meta_json(&meta);
                body["path"] = json!(path.as_str());
                body["version"] = json!(version);
                return Ok(Json(body).into_response());
            }
            Err(e) if e.code == "cas_mismatch" && req.cas.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::new(StatusCode::CONFLICT, "cas_mismatch", "too many concurrent writers; try again"))
}

async fn delete(state: &AppState, path: &SecretPath, versions: Option<&String>) -> ApiResult<Response> {
    let meta = state.store.secret_meta(path.as_str()).await?.ok_or_else(|| no_secret(path))?;
    let versions = match versions {
        Some(v) => parse_versions(v)?,
        None => vec![meta.current_version],
    };
    let changed = state.store.set_deleted(path.as_str(), &versions, Some(state.clock.now_ms())).await?;
    Ok(Json(json!({"path": path.as_str(), "deleted": changed})).into_response())
}

async fn undelete(state: &AppState, path: &SecretPath, req: VersionsRequest) -> ApiResult<Response> {
    let meta = state.store.secret_meta(path.as_str()).await?.ok_or_else(|| no_secret(path))?;
    let versions = if req.versions.is_empty() { vec![meta.current_version] } else { req.versions };
    let changed = state.store.set_deleted(path.as_str(), &versions, None).await?;
    Ok(Json(json!({"path": path.as_str(), "undeleted": changed})).into_response())
}

async fn destroy(state: &AppState, path: &SecretPath, req: VersionsRequest) -> ApiResult<Response> {
    state.store.secret_meta(path.as_str()).await?.ok_or_else(|| no_secret(path))?;
    match (req.all, req.versions.is_empty()) {
        (true, true) => {
            state.store.destroy_secret(path.as_str()).await?;
            Ok(Json(json!({"path": path.as_str(), "destroyed": "all"})).into_response())
        }
        (false, false) => {
            let changed = state.store.destroy_versions(path.as_str(), &req.versions).await?;
            Ok(Json(json!({"path": path.as_str(), "destroyed": changed})).into_response())
        }
        _ => Err(ApiError::bad(
            "invalid_request",
            "destroy needs either {\"versions\": [..]} or {\"all\": true}, not both or neither",
        )),
    }
}
