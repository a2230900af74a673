//! What is due for rotation: secrets with a rotation period (exchange
//! accounts among them) and access keys with a maximum age (their own, or
//! the server's `--key-max-age` for keyward's keys). One list feeds
//! `keyward rotation status`, the rotation alert and the
//! `keyward_rotation_overdue` gauge, so they never disagree.

use crate::error::Result;
use crate::keys::Keys;
use crate::secrets::Secrets;
use keyward_core::clock::rfc3339;
use keyward_core::duration::format_secs;
use keyward_core::policy::KeyState;
use keyward_store::SecretMeta;
use serde::Serialize;

/// How far ahead an item counts as due (the alert's and the gauge's window
/// is the same week).
pub(crate) const DUE_WITHIN_MS: i64 = 7 * 86_400_000;

/// One thing that rotates.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct DueItem {
    /// `secret`, `exchange_account` or `access_key`.
    pub kind: &'static str,
    /// The secret's path or the key's id.
    pub id: String,
    /// The key's name (keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Time since the last rotation (or creation), e.g. `12d`.
    pub age: String,
    /// The period it rotates on, e.g. `30d`.
    pub every: String,
    /// When it was last rotated (or created).
    pub since: String,
    /// When it is due.
    pub due_at: String,
    /// Milliseconds until due (negative once overdue).
    pub due_in_ms: i64,
    /// `ok`, `due` (within the window), `overdue`, or `unfinished` (a
    /// rotation was staged and neither promoted nor abandoned).
    pub status: &'static str,
    /// The key's state; for a secret `current`, or `pending vN` while a
    /// rotation is unfinished.
    pub state: String,
    /// The command that rotates it (or finishes the unfinished rotation).
    pub run: String,
    /// For an unfinished rotation, the command that abandons it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abandon: Option<String>,
}

/// The answer of `GET /v1/rotation`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct RotationStatus {
    /// What rotates, soonest due first.
    pub items: Vec<DueItem>,
    /// How many are past their date.
    pub overdue: usize,
    /// How many are due within the window.
    pub due: usize,
    /// How many rotations were staged and not finished.
    #[serde(default)]
    pub unfinished: usize,
}

/// A duration in its largest whole unit, rounded down: `12d`, `5h`, `40m`.
fn human(ms: i64) -> String {
    let s = (ms.max(0) / 1000) as u64;
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= n {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

fn status(due_in_ms: i64, within_ms: i64) -> &'static str {
    if due_in_ms <= 0 {
        "overdue"
    } else if due_in_ms <= within_ms {
        "due"
    } else {
        "ok"
    }
}

/// The time the list is made at, and how far ahead counts as due.
struct Window {
    now_ms: i64,
    within_ms: i64,
}

impl Window {
    /// An item rotated at `since_ms`, every `every_s`, due at `due_ms`.
    fn item(&self, kind: &'static str, id: &str, since_ms: i64, every_s: i64, due_ms: i64) -> DueItem {
        DueItem {
            kind,
            id: id.to_string(),
            name: None,
            age: human(self.now_ms - since_ms),
            every: format_secs(every_s.max(0) as u64),
            since: rfc3339(since_ms),
            due_at: rfc3339(due_ms),
            due_in_ms: due_ms - self.now_ms,
            status: status(due_ms - self.now_ms, self.within_ms),
            state: String::new(),
            run: String::new(),
            abandon: None,
        }
    }
}

/// Every secret with a rotation period and every live key with a maximum
/// age, soonest due first; `within_ms` sets what counts as `due`.
pub(crate) async fn due_list(keys: &Keys, secrets: &Secrets, now_ms: i64, within_ms: i64) -> Result<Vec<DueItem>> {
    let at = Window { now_ms, within_ms };
    let mut out = Vec::new();
    for m in secrets.list("").await? {
        let account = m.path.starts_with("exchanges/") && m.kind.is_some();
        let kind = if account { "exchange_account" } else { "secret" };
        if let Some(pending) = m.pending_version {
            out.push(unfinished(&at, secrets, &m, kind, pending).await?);
            continue;
        }
        let Some(period_s) = m.rotation_period_s else { continue };
        let due = m.updated_ms.saturating_add(period_s.saturating_mul(1000));
        let run = if account {
            format!(
                "keyward secret rotate {} api_key=… api_secret=- --verify (the new credentials from the exchange)",
                m.path
            )
        } else {
            format!("keyward secret rotate {} FIELD=… --promote (the new value)", m.path)
        };
        out.push(DueItem { state: "current".into(), run, ..at.item(kind, &m.path, m.updated_ms, period_s, due) });
    }
    for k in keys.all()? {
        let (Some(aged), Some(max_s)) = (k.aged_ms(), k.max_age_s()) else { continue };
        let state = k.effective_state(now_ms);
        // Revoked, rolled or disabled keys do not rotate; expired ones do (by rolling).
        let live = matches!(state, KeyState::Active | KeyState::Pending | KeyState::Expired);
        if !live || k.tampered || k.policy.rolled_to.is_some() {
            continue;
        }
        out.push(DueItem {
            name: Some(k.name.to_string()),
            state: state.as_str().to_string(),
            run: format!("keyward key roll {} --grace 24h", k.id),
            ..at.item("access_key", &k.id, k.created_ms, max_s, aged)
        });
    }
    out.sort_by(|a, b| a.due_in_ms.cmp(&b.due_in_ms).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// A rotation staged and neither promoted nor abandoned (a crash, a
/// refused check, or one left for later): due now, with both ways out.
async fn unfinished(
    at: &Window,
    secrets: &Secrets,
    m: &SecretMeta,
    kind: &'static str,
    pending: u64,
) -> Result<DueItem> {
    let (_, versions) = secrets.history(&m.path).await?;
    let staged = versions.iter().find(|v| v.version == pending).map(|v| v.created_ms).unwrap_or(m.updated_ms);
    let finish = if kind == "exchange_account" { "--verify" } else { "--promote" };
    Ok(DueItem {
        status: "unfinished",
        due_in_ms: 0,
        state: format!("pending v{pending}"),
        run: format!("keyward secret rotate {} {finish}", m.path),
        abandon: Some(format!("keyward secret rotate {} --abandon", m.path)),
        ..at.item(kind, &m.path, staged, m.rotation_period_s.unwrap_or(0), at.now_ms)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_exact() {
        assert_eq!(status(0, DUE_WITHIN_MS), "overdue", "due now is overdue");
        assert_eq!(status(1, DUE_WITHIN_MS), "due");
        assert_eq!(status(DUE_WITHIN_MS, DUE_WITHIN_MS), "due");
        assert_eq!(status(DUE_WITHIN_MS + 1, DUE_WITHIN_MS), "ok");
        assert_eq!(
            (human(0), human(59_999), human(3_600_000), human(3 * 86_400_000 + 5)),
            ("0s".into(), "59s".into(), "1h".into(), "3d".into())
        );
    }
}
