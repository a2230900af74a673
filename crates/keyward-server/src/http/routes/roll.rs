//! `POST /v1/rotation/roll`: scheduled rolling of access keys from their
//! maximum age. Rolls every key `rotation status` lists as due (within the
//! window, default the alert's week) or overdue, as `key roll --grace` does
//! one at a time; meant to run on a schedule (cron, a systemd timer).
//!
//! A new key is shown once: with `store_under`, each goes into the secret
//! `<store_under><key name>` (fields `key`, `key_id`, `rolled_from`), from
//! which the bot's process picks it up (with `secret:read` on it, or
//! injected by the operator's tooling), and never appears in the answer.
//! Should storing fail after the roll, the answer carries that key so it is
//! not lost.
//!
//! Everything is authorized before anything changes: `key:admin` and the
//! right to manage each key, and `secret:write` on every path a new key
//! goes to. Each roll and each stored key is on the audit log with the key
//! it concerns, so `key show` and `secret history` list it.

use super::keys::{manageable, refuse_token};
use super::record_change;
use crate::auth::Caller;
use crate::error::{Code, Error};
use crate::http::extract::{body_bytes, parse_json};
use crate::http::{ApiResult, AppState};
use crate::keys::KeyEntry;
use crate::rotation::{DUE_WITHIN_MS, due_list};
use crate::secrets::NewSecret;
use axum::Json;
use axum::extract::{Request, State};
use keyward_core::clock::rfc3339;
use keyward_core::duration;
use keyward_core::scope::Need;
use keyward_core::secret::{SecretData, SecretValue};
use keyward_core::secret_path::SecretPath;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Body of `POST /v1/rotation/roll`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollDue {
    /// Roll keys due within this long (overdue ones too); default `7d`.
    due_within: Option<String>,
    /// How long each old key keeps working; default `24h`.
    grace: Option<String>,
    /// Store each new key in the secret `<store_under><key name>` instead of
    /// answering with it (`bots/` → `bots/grid-bot`).
    store_under: Option<String>,
    /// Only list what would be rolled.
    #[serde(default)]
    dry_run: bool,
}

fn parse_duration(what: &str, value: Option<&str>, default_s: u64) -> Result<i64, Error> {
    match value {
        None => Ok(default_s as i64 * 1000),
        Some("0") | Some("0s") => Ok(0),
        Some(v) => duration::parse_secs(v)
            .map(|s| s as i64 * 1000)
            .map_err(|_| Error::invalid(format!("{what} is a duration such as 7d, 36h or 30m"))),
    }
}

/// Where a key's successor is stored, checked.
fn store_path(prefix: &str, key: &KeyEntry) -> Result<SecretPath, Error> {
    SecretPath::parse(&format!("{prefix}{}", key.name)).map_err(|_| {
        Error::new(
            Code::InvalidPath,
            format!("key {} is named {:?}, which cannot end a secret path under {prefix}", key.id, key.name),
        )
    })
}

fn check_prefix(prefix: &str) -> Result<(), Error> {
    if !prefix.ends_with('/') || prefix.starts_with("exchanges/") || SecretPath::parse(&format!("{prefix}x")).is_err() {
        return Err(Error::new(
            Code::InvalidPath,
            "store_under is a secret folder ending in '/' (bots/), not under exchanges/",
        ));
    }
    Ok(())
}

/// `POST /v1/rotation/roll`.
pub(crate) async fn roll_due(State(state): State<AppState>, caller: Caller, req: Request) -> ApiResult<Json<Value>> {
    caller.require(Need::KeyAdmin, "rolling keys (key:admin)")?;
    refuse_token(&caller)?;
    let bytes = body_bytes(req).await?;
    let body: RollDue = if bytes.is_empty() { RollDue::default() } else { parse_json(&bytes)? };
    let within_ms = parse_duration("due_within", body.due_within.as_deref(), (DUE_WITHIN_MS / 1000) as u64)?;
    let grace_ms = parse_duration("grace", body.grace.as_deref(), 24 * 3600)?;
    if let Some(p) = &body.store_under {
        check_prefix(p)?;
    }
    let now = state.clock.now_ms();
    let due = due_list(&state.keys, &state.secrets, now, within_ms).await?;
    let mut plan: Vec<(Arc<KeyEntry>, Option<SecretPath>)> = Vec::new();
    for item in due.iter().filter(|i| i.kind == "access_key" && i.status != "ok") {
        let Some(key) = state.keys.by_id(&item.id)?.filter(|k| manageable(&caller, k) && k.rollable(now)) else {
            continue;
        };
        let path = match &body.store_under {
            Some(prefix) => {
                let path = store_path(prefix, &key)?;
                caller.require(Need::SecretWrite(path.as_str()), &format!("storing the new key at {path}"))?;
                Some(path)
            }
            None => None,
        };
        plan.push((key, path));
    }
    let ids: Vec<&str> = plan.iter().map(|(k, _)| &*k.id).collect();
    caller.record.detail(json!({"change": "roll_due", "keys": ids, "dry_run": body.dry_run}).to_string());
    let admitted = caller.admit().await?;
    if body.dry_run {
        let items: Vec<Value> = plan
            .iter()
            .map(|(k, p)| json!({"id": k.id, "name": k.name, "store_at": p.as_ref().map(SecretPath::as_str)}))
            .collect();
        return Ok(Json(json!({"dry_run": true, "would_roll": items})));
    }
    let (mut rolled, mut failed) = (Vec::new(), Vec::new());
    for (key, path) in plan {
        let r = match state.keys.roll(&admitted, &caller.unsealed, &key, grace_ms).await {
            Ok(r) => r,
            Err(e) => {
                failed.push(
                    json!({"id": key.id, "name": key.name, "error": {"code": e.code.as_str(), "message": e.message}}),
                );
                continue;
            }
        };
        let detail = json!({"change": "rolled", "to": r.new.id, "scheduled": true});
        record_change(&state, &caller, Some(&key.id), detail.to_string()).await?;
        tracing::info!(key_id = %r.new.id, old = %key.id, by = %caller.key.id, "access key rolled on schedule");
        let mut item = json!({
            "id": key.id, "name": key.name, "new_id": r.new.id, "grace_until": rfc3339(r.grace_until_ms),
        });
        match path {
            Some(path) => {
                let mut data = SecretData::default();
                data.0.insert("key".into(), SecretValue::new(r.secret.expose().to_string()));
                data.0.insert("key_id".into(), SecretValue::new(r.new.id.to_string()));
                data.0.insert("rolled_from".into(), SecretValue::new(key.id.to_string()));
                let new = NewSecret { data, kind: None, cas: None, rotation_period_s: None };
                match state.secrets.write(&admitted, &caller.unsealed, path.as_str(), new).await {
                    Ok((_, version)) => {
                        record_change(
                            &state,
                            &caller,
                            Some(path.as_str()),
                            json!({"change": "written", "version": version}).to_string(),
                        )
                        .await?;
                        item["stored_at"] = json!(path.as_str());
                        item["version"] = json!(version);
                    }
                    Err(e) => {
                        // The key exists and nobody has it yet: hand it out rather than lose it.
                        item["store_error"] = json!({"code": e.code.as_str(), "message": e.message});
                        item["key"] = json!(r.secret.expose());
                    }
                }
            }
            None => item["key"] = json!(r.secret.expose()),
        }
        rolled.push(item);
    }
    Ok(Json(json!({"dry_run": false, "rolled": rolled, "failed": failed})))
}
