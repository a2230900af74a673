//! `POST /v1/sys/backup` and `POST /v1/sys/restore`.
//!
//! A backup is a consistent snapshot of the data taken while the server
//! serves, sealed under a root-derived key (see `seal::backup`): it holds
//! secrets only as the ciphertext they are stored as, and non-exportable
//! fields stay inside it. A restore takes such a file as the body: checked
//! first (foreign, truncated, tampered: each its own code); without
//! `?confirm=true` it changes nothing and answers what restoring would do,
//! the access keys it would bring back from revoked or compromised among
//! it; with it, the secrets, keys, namespaces, order usage and key ledger
//! become the backup's, the seal record and audit log stay, and the
//! restore is an entry on that log. Both need `sys:admin`.

use crate::auth::Caller;
use crate::error::{Code, Error};
use crate::http::extract::parse_query;
use crate::http::{ApiResult, AppState};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use keyward_core::clock::rfc3339;
use keyward_core::scope::Need;
use serde_json::{Value, json};

/// The largest backup a restore reads.
const MAX_BACKUP: usize = 1 << 30;

/// `POST /v1/sys/backup`: the backup file as the body.
pub(crate) async fn backup(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require(Need::SysAdmin, "backing up the data (sys:admin)")?;
    caller.admit().await?;
    let (file, header) = state.barrier.backup(state.clock.now_ms()).await?;
    caller.record.detail(
        json!({"change": "backup", "term": header.term, "created_ms": header.created_ms, "bytes": file.len()})
            .to_string(),
    );
    let name = format!("attachment; filename=\"keyward-{}.kwbackup\"", rfc3339(header.created_ms).replace(':', ""));
    Ok(([(header::CONTENT_TYPE, "application/octet-stream".to_owned()), (header::CONTENT_DISPOSITION, name)], file)
        .into_response())
}

/// `POST /v1/sys/restore[?confirm=true]`: the backup file as the body.
pub(crate) async fn restore(State(state): State<AppState>, caller: Caller, req: Request) -> ApiResult<Json<Value>> {
    caller.require(Need::SysAdmin, "restoring a backup (sys:admin)")?;
    let q = parse_query(req.uri().query(), &["confirm"])?;
    let confirm = match q.get("confirm").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(Error::new(Code::InvalidQuery, "confirm is true or false").into()),
    };
    let file = axum::body::to_bytes(req.into_body(), MAX_BACKUP).await.map_err(|_| {
        Error::new(Code::BodyTooLarge, format!("a backup larger than {MAX_BACKUP} bytes cannot be restored over HTTP"))
    })?;
    caller.record.detail(json!({"change": if confirm { "restore" } else { "restore_checked" }}).to_string());
    caller.admit().await?;
    let (header, snapshot) = state.barrier.open_backup(&file).await?;
    let revived = state.barrier.restore_preview(&snapshot).await?;
    let mut out = json!({
        "created": rfc3339(header.created_ms),
        "created_ms": header.created_ms,
        "term": header.term,
        "bytes": file.len(),
        "revived": revived,
        "restored": false,
    });
    if !confirm {
        return Ok(Json(out));
    }
    let ids: Vec<&str> = revived.iter().map(|k| k.id.as_str()).collect();
    let decided =
        json!({"change": "restore", "backup_created_ms": header.created_ms, "term": header.term, "revived": ids});
    // On the log, durably, before anything changes: no audit, no restore.
    super::record_change(&state, &caller, None, decided.to_string()).await?;
    caller.record.detail(json!({"change": "restored", "backup_created_ms": header.created_ms}).to_string());
    let _transition = state.barrier.transition().await;
    let held = state.keys.rev().await;
    state.barrier.restore(&snapshot).await?;
    state.reload().await?;
    // The restored ledger head moves past the one it replaced, so other
    // nodes on a shared database take it (they refuse a head going back).
    if let Some(held) = held {
        state.keys.advance_past(&*state.barrier.unsealed()?, held).await?;
    }
    tracing::warn!(backup = %rfc3339(header.created_ms), revived = ids.len(), "restored a backup");
    out["restored"] = json!(true);
    Ok(Json(out))
}
