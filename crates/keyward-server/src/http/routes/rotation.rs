//! `GET /v1/rotation` (`sys:admin`): what is due for rotation.

use crate::auth::Caller;
use crate::error::{Code, Error};
use crate::http::extract::parse_query;
use crate::http::{ApiResult, AppState};
use crate::rotation::{DUE_WITHIN_MS, RotationStatus, due_list};
use axum::Json;
use axum::extract::{Request, State};
use keyward_core::duration;
use keyward_core::scope::Need;

/// `GET /v1/rotation?due_within=7d`: every secret with a rotation period and
/// every key with a maximum age, soonest first; with `due_within`, only
/// those due within it (overdue included), which also sets what counts as
/// `due` (default seven days).
pub(crate) async fn status(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<Json<RotationStatus>> {
    caller.require(Need::SysAdmin, "reading the rotation status (sys:admin)")?;
    let q = parse_query(req.uri().query(), &["due_within"])?;
    let within = q
        .get("due_within")
        .map(|d| {
            duration::parse_secs(d)
                .map(|s| s as i64 * 1000)
                .map_err(|_| Error::new(Code::InvalidQuery, "due_within is a duration such as 7d, 36h or 30m"))
        })
        .transpose()?;
    caller.admit().await?;
    let now = state.clock.now_ms();
    let mut items = due_list(&state.keys, &state.secrets, now, within.unwrap_or(DUE_WITHIN_MS)).await?;
    if within.is_some() {
        items.retain(|i| i.status != "ok");
    }
    let count = |s: &str| items.iter().filter(|i| i.status == s).count();
    let (overdue, due, unfinished) = (count("overdue"), count("due"), count("unfinished"));
    Ok(Json(RotationStatus { items, overdue, due, unfinished }))
}
