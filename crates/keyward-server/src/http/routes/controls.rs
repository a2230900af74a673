//! `/v1/accounts/{name}` and its `addresses`, `caps/{asset}` and
//! `dead-man`: an exchange account's withdrawal allowlist, its caps per 24
//! hours and its dead-man timer (see `controls`, `incident`).
//!
//! Each change needs `account:<name>:admin` (or `sys:admin`). Widening what
//! may leave (an address added, a cap raised or removed) waits for
//! approvals where they are in force; narrowing it (an address removed, a
//! cap lowered) applies at once. Every change is on the audit log with what
//! it changed, and alerts.

use super::approvals::{Gate, gate};
use super::incident::require_account_admin;
use super::record_change;
use crate::alerts::Alert;
use crate::approvals::PendingChange;
use crate::auth::Caller;
use crate::controls::AllowedAddress;
use crate::error::{Code, Error};
use crate::exchange::check_account_name;
use crate::http::extract::{body_bytes, parse_json};
use crate::http::{ApiResult, AppState};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use keyward_core::clock::rfc3339;
use keyward_core::scope::{Class, Need};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

/// `GET /v1/accounts/{name}`: its controls as they stand.
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    check_account_name(&name)?;
    caller.record.target(format!("{name} controls"));
    if !caller.may(Need::Account(&name, Class::Withdraw)) {
        require_account_admin(&caller, &name, "reading the controls of")?;
    }
    let account = state.exchanges.account(&caller.unsealed, &name).await?;
    caller.admit().await?;
    let c = state.controls.get(&caller.unsealed, &name).await?;
    let spent: std::collections::BTreeMap<String, Decimal> =
        state.controls.spent(&caller.unsealed, &name).await?.into_iter().collect();
    let caps: serde_json::Map<String, Value> = c
        .caps
        .iter()
        .map(|(asset, cap)| {
            let used = spent.get(asset).copied().unwrap_or_default();
            let left = cap.parse::<Decimal>().map(|c| (c - used).max(Decimal::ZERO).to_string()).unwrap_or_default();
            (asset.clone(), json!({"per_24h": cap, "spent_24h": used.to_string(), "left": left}))
        })
        .collect();
    let dead_man = account.exchange.dead_man();
    let armed = state.incident.dead_man_states().into_iter().find(|(a, _)| *a == name).map(|(_, ok)| ok);
    Ok(Json(json!({
        "account": name,
        "exchange": account.exchange.kind(),
        "frozen": c.frozen.as_ref().map(|f| json!({"since": rfc3339(f.at_ms), "by": f.by, "reason": f.reason})),
        "withdrawal_addresses": c.addresses,
        "withdrawal_caps": caps,
        "dead_man": {
            "timeout_s": c.dead_man_s,
            "timer": dead_man.map(|d| d.name),
            "armed_on_this_node": armed,
        },
    })))
}

/// A withdrawal destination, as asked.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddressRequest {
    /// The asset (`BTC`), as the exchange names it in a withdrawal.
    asset: String,
    /// The address (Kraken: the withdrawal key's name).
    address: String,
    /// The network; none: any network.
    network: Option<String>,
    /// The memo or tag; none: withdrawals to it carry none.
    memo: Option<String>,
}

fn word(what: &str, v: &str) -> Result<String, Error> {
    let v = v.trim();
    if v.is_empty() || v.len() > 256 || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::new(
            Code::InvalidField,
            format!("{what} must be 1 to 256 printable characters without spaces"),
        ));
    }
    Ok(v.to_string())
}

fn asset(v: &str) -> Result<String, Error> {
    let v = word("asset", v)?.to_ascii_uppercase();
    if v.len() > 32 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
        return Err(Error::new(Code::InvalidField, "asset is up to 32 letters, digits, '-', '_' or '.', e.g. BTC"));
    }
    Ok(v)
}

impl AddressRequest {
    fn entry(self, by: &str, now_ms: i64) -> Result<AllowedAddress, Error> {
        Ok(AllowedAddress {
            asset: asset(&self.asset)?,
            address: word("address", &self.address)?,
            network: self.network.as_deref().map(|n| word("network", n)).transpose()?,
            memo: self.memo.as_deref().map(|m| word("memo", m)).transpose()?,
            added_ms: now_ms,
            by: by.to_string(),
        })
    }
}

fn same_destination(a: &AllowedAddress, b: &AllowedAddress) -> bool {
    a.asset == b.asset && a.address == b.address && a.network == b.network && a.memo == b.memo
}

fn describe(a: &AllowedAddress) -> String {
    format!(
        "{} {}{}{}",
        a.asset,
        a.address,
        a.network.as_deref().map(|n| format!(" on {n}")).unwrap_or_default(),
        a.memo.as_deref().map(|m| format!(" memo {m}")).unwrap_or_default()
    )
}

/// `POST /v1/accounts/{name}/addresses`: allow a withdrawal destination
/// (waits for approvals where they are in force).
pub(crate) async fn add_address(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    check_account_name(&name)?;
    caller.record.target(format!("{name} allow-address"));
    require_account_admin(&caller, &name, "allowing withdrawal addresses of")?;
    let body: AddressRequest = parse_json(&body_bytes(req).await?)?;
    let entry = body.entry(&caller.key.id, state.clock.now_ms())?;
    state.exchanges.account(&caller.unsealed, &name).await?;
    caller.admit().await?;
    let what = describe(&entry);
    let change = PendingChange::AllowAddress { account: name.clone(), address: entry.clone() };
    if let Gate::Waiting(answer) =
        gate(&state, &caller, change, format!("allow withdrawals of {what} from {name}")).await?
    {
        return Ok(answer);
    }
    let detail = json!({"change": "address_allowed", "address": entry});
    record_change(&state, &caller, None, detail.to_string()).await?;
    let (c, ()) = state
        .controls
        .update(&caller.unsealed, &name, |c| {
            if !c.addresses.iter().any(|a| same_destination(a, &entry)) {
                c.addresses.push(entry.clone());
            }
            Ok(())
        })
        .await?;
    caller.record.detail(detail.to_string());
    let text = format!("{what} may now receive withdrawals from {name} (by {})", caller.key.id);
    state.sinks.alerts.raise(Alert::plain("withdrawal_address", format!("{name} {what}"), text), state.clock.now_ms());
    Ok(Json(json!({"account": name, "withdrawal_addresses": c.addresses})).into_response())
}

/// `DELETE /v1/accounts/{name}/addresses`: remove a destination (at once).
pub(crate) async fn remove_address(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    check_account_name(&name)?;
    caller.record.target(format!("{name} remove-address"));
    require_account_admin(&caller, &name, "removing withdrawal addresses of")?;
    let body: AddressRequest = parse_json(&body_bytes(req).await?)?;
    let entry = body.entry(&caller.key.id, 0)?;
    state.exchanges.account(&caller.unsealed, &name).await?;
    caller.admit().await?;
    let (c, removed) = state
        .controls
        .update(&caller.unsealed, &name, |c| {
            let before = c.addresses.len();
            c.addresses.retain(|a| !same_destination(a, &entry));
            if c.addresses.len() == before {
                return Err(Error::not_found(format!("{} is not on {name}'s withdrawal allowlist", describe(&entry))));
            }
            Ok(before - c.addresses.len())
        })
        .await?;
    caller
        .record
        .detail(json!({"change": "address_removed", "address": describe(&entry), "removed": removed}).to_string());
    Ok(Json(json!({"account": name, "withdrawal_addresses": c.addresses})).into_response())
}

/// Body of `PUT /v1/accounts/{name}/caps/{asset}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CapRequest {
    /// The most that may leave in any 24 hours (a decimal); `null`: no cap.
    cap: Option<String>,
}

/// `PUT /v1/accounts/{name}/caps/{asset}`: a cap lowered or set where there
/// was none applies at once; raised or removed, it waits for approvals.
pub(crate) async fn set_cap(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, asset_name)): Path<(String, String)>,
    req: Request,
) -> ApiResult<Response> {
    check_account_name(&name)?;
    caller.record.target(format!("{name} cap"));
    require_account_admin(&caller, &name, "setting withdrawal caps of")?;
    let asset = asset(&asset_name)?;
    let body: CapRequest = parse_json(&body_bytes(req).await?)?;
    let cap = match &body.cap {
        Some(c) => {
            let d = keyward_core::order::decimal("cap", c.trim()).map_err(|e| Error::new(Code::InvalidField, e.0))?;
            Some(d.normalize().to_string())
        }
        None => None,
    };
    state.exchanges.account(&caller.unsealed, &name).await?;
    let current = state.controls.get(&caller.unsealed, &name).await?.caps.get(&asset).cloned();
    let raises = match (&current, &cap) {
        (Some(_), None) => true,
        (Some(old), Some(new)) => new.parse::<Decimal>().ok() > old.parse::<Decimal>().ok(),
        (None, _) => false,
    };
    caller.admit().await?;
    if raises {
        let summary = match &cap {
            Some(c) => format!("raise {name}'s {asset} withdrawal cap to {c} per 24 hours"),
            None => format!("remove {name}'s {asset} withdrawal cap"),
        };
        let change = PendingChange::SetCap { account: name.clone(), asset: asset.clone(), cap: cap.clone() };
        if let Gate::Waiting(answer) = gate(&state, &caller, change, summary).await? {
            return Ok(answer);
        }
    }
    let detail = json!({"change": "withdrawal_cap", "asset": asset, "cap": cap, "was": current});
    record_change(&state, &caller, None, detail.to_string()).await?;
    state
        .controls
        .update(&caller.unsealed, &name, |c| {
            match &cap {
                Some(v) => c.caps.insert(asset.clone(), v.clone()),
                None => c.caps.remove(&asset),
            };
            Ok(())
        })
        .await?;
    caller.record.detail(detail.to_string());
    Ok(Json(json!({"account": name, "asset": asset, "cap_per_24h": cap, "was": current})).into_response())
}

/// Body of `PUT /v1/accounts/{name}/dead-man`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeadManRequest {
    /// The timeout (`60s`, `2m`); `off` or `null` disarms it.
    timeout: Option<String>,
}

/// `PUT /v1/accounts/{name}/dead-man`: keep the exchange's
/// cancel-on-disconnect timer armed (or disarm it); armed at once.
pub(crate) async fn dead_man(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    check_account_name(&name)?;
    caller.record.target(format!("{name} dead-man"));
    require_account_admin(&caller, &name, "setting the dead-man timer of")?;
    let body: DeadManRequest = parse_json(&body_bytes(req).await?)?;
    let account = state.exchanges.account(&caller.unsealed, &name).await?;
    let timeout_s = match body.timeout.as_deref().map(str::trim) {
        None | Some("off") | Some("0") => None,
        Some(t) => {
            Some(keyward_core::duration::parse_secs(t).map_err(|e| Error::new(Code::InvalidField, e.to_string()))?)
        }
    };
    let timer = account.exchange.dead_man();
    if let Some(secs) = timeout_s {
        let Some(d) = &timer else {
            return Err(Error::new(
                Code::AccountInvalid,
                format!(
                    "{} has no cancel-on-disconnect timer a REST call arms (where it has one, it belongs to a WebSocket session)",
                    account.exchange.kind()
                ),
            )
            .into());
        };
        if secs < u64::from(d.min_s) || secs > u64::from(d.max_s) {
            return Err(Error::new(
                Code::InvalidField,
                format!("{}'s timer takes {} to {} seconds", account.exchange.kind(), d.min_s, d.max_s),
            )
            .into());
        }
    }
    caller.admit().await?;
    let detail = json!({"change": "dead_man", "timeout_s": timeout_s});
    record_change(&state, &caller, None, detail.to_string()).await?;
    let timeout = timeout_s.map(|s| s as u32);
    state
        .controls
        .update(&caller.unsealed, &name, |c| {
            c.dead_man_s = timeout;
            Ok(())
        })
        .await?;
    caller.record.detail(detail.to_string());
    let armed = match (timeout, &timer) {
        (Some(t), _) => Some(state.incident.arm(&caller.unsealed, &name, t, None).await),
        (None, Some(_)) => Some(state.incident.arm(&caller.unsealed, &name, 0, None).await),
        (None, None) => None,
    };
    Ok(Json(json!({
        "account": name,
        "timeout_s": timeout,
        "timer": timer.map(|d| d.name),
        "armed": armed.as_ref().map(|a| a.ok && timeout.is_some()),
        "calls": armed.map(|a| a.calls).unwrap_or_default(),
    }))
    .into_response())
}
