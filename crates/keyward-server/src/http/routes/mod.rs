//! HTTP routes, one module per resource. Each parses its input, has the
//! caller identified, authorizes, admits, then calls a service.

pub(super) mod accounts;
pub(crate) mod approvals;
pub(super) mod audit;
pub(super) mod backup;
pub(super) mod controls;
pub(super) mod incident;
pub(super) mod keys;
pub(super) mod metrics;
pub(super) mod migrate_seal;
pub(super) mod proxy;
pub(super) mod rekey;
pub(super) mod roll;
pub(super) mod rotate;
pub(super) mod rotation;
pub(super) mod scan;
pub(super) mod secrets;
pub(super) mod sign;
pub(super) mod sys;
pub(super) mod tokens;
pub(super) mod upstream;

use crate::audit::Verdict;
use crate::auth::Caller;
use crate::error::Error;
use crate::http::AppState;

/// Puts one change this request made on the audit log now (durably: the
/// change stays made whatever happens next), under `target` or the
/// request's own target.
async fn record_change(state: &AppState, caller: &Caller, target: Option<&str>, detail: String) -> Result<(), Error> {
    let mut note = caller.record.note();
    if let Some(t) = target {
        note.target = Some(t.to_string());
    }
    note.detail = detail;
    state.auditor.record_durable(note.entry(Verdict::Allow, "", target.unwrap_or_default())).await
}
