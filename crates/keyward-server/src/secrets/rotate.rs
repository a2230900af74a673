//! Staged rotation: new fields are written as a **pending** version that
//! nothing reads, then promoted to **current** in one step (for an exchange
//! account, after the exchange accepted them: see `exchange::check`), the
//! old current version kept as **previous** for a one-step rollback; or the
//! pending version is abandoned (destroyed).
//!
//! Every step is one store transaction, so a crash between steps leaves the
//! secret on exactly one current version, with the pending one waiting for
//! `rotate --promote`, `--verify` or `--abandon`.

use super::requests::{Fields, check_type};
use super::writer::WriteJob;
use super::{Secrets, no_secret};
use crate::error::{Code, Error, Result};
use crate::keys::Admitted;
use crate::seal::Unsealed;
use keyward_core::duration;
use keyward_core::secret::{SecretData, check_field_name};
use keyward_store::{SecretMeta, Stage, StoreError};
use serde::Deserialize;
use std::sync::Arc;

/// Body of `POST /v1/secrets/{path}?action=rotate`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateRequest {
    /// Fields to change, laid over the pending version if one is staged,
    /// otherwise over the current one. Absent: act on the pending version.
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    data: Option<Fields>,
    /// Promote only if the exchange accepts the pending credentials
    /// (exchange accounts).
    #[serde(default)]
    pub verify: bool,
    /// Promote without asking the exchange.
    #[serde(default)]
    pub promote: bool,
    /// Answer right after promotion instead of waiting until no request in
    /// flight still uses the old version.
    #[serde(default)]
    pub no_wait: bool,
    /// Type to set (a secret's first version, from `account keygen`).
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Rotation period to set.
    rotation_period: Option<String>,
}

impl std::fmt::Debug for RotateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateRequest")
            .field("data", &self.data.as_ref().map(|_| "[redacted]"))
            .field("verify", &self.verify)
            .field("promote", &self.promote)
            .field("no_wait", &self.no_wait)
            .finish()
    }
}

/// Body of `action=rollback` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepRequest {
    /// Answer at once instead of waiting for requests in flight on the old version.
    #[serde(default)]
    pub no_wait: bool,
}

/// A validated rotation: the field changes and the settings.
#[derive(Debug)]
pub(crate) struct RotatePlan {
    /// Field changes (`None`: act on the pending version as it is).
    pub changes: Option<SecretData>,
    /// Type to set.
    pub kind: Option<String>,
    /// Rotation period to set.
    pub rotation_period_s: Option<i64>,
}

impl RotateRequest {
    /// Validates field names, type and period.
    pub(crate) fn plan(&mut self) -> Result<RotatePlan> {
        let changes = self.data.take().map(|f| f.0);
        if let Some(c) = &changes {
            if c.0.is_empty() {
                return Err(Error::new(Code::InvalidField, "a rotation needs at least one field (or none at all)"));
            }
            for name in c.0.keys() {
                check_field_name(name)?;
            }
        }
        if let Some(k) = &self.kind {
            check_type(k)?;
        }
        let rotation_period_s =
            self.rotation_period.as_deref().map(duration::parse_secs).transpose()?.map(|s| s as i64);
        Ok(RotatePlan { changes, kind: self.kind.take(), rotation_period_s })
    }
}

/// What a rotation stages: the fields of the new pending version, and the
/// pending version it replaces.
#[derive(Debug)]
pub(crate) struct Staging {
    /// The secret as it stood.
    pub meta: Option<SecretMeta>,
    /// Every field of the new version.
    pub data: SecretData,
    /// The pending version it replaces.
    pub replaces: Option<u64>,
}

fn nothing_pending(path: &str) -> Error {
    Error::new(
        Code::NoRotation,
        format!("nothing is pending for {path}; stage new fields first: keyward secret rotate {path} FIELD=…"),
    )
}

impl Secrets {
    /// The new version's fields: `changes` laid over the pending version if
    /// one is staged (a key made by `account keygen` gets its key id this
    /// way), otherwise over the current one. A secret that does not exist
    /// starts from nothing only when `may_create` (keygen).
    pub(crate) async fn staging(
        &self,
        unsealed: &Unsealed,
        path: &str,
        changes: SecretData,
        may_create: bool,
    ) -> Result<Staging> {
        let Some(meta) = self.meta(path).await? else {
            if may_create {
                return Ok(Staging { meta: None, data: changes, replaces: None });
            }
            return Err(Error::not_found(format!(
                "no secret at {path}: write its first version with `keyward secret put {path} …`"
            )));
        };
        let base = match meta.pending_version {
            Some(p) => p,
            None if meta.current_version > 0 => meta.current_version,
            None => return Err(no_secret(path)),
        };
        let mut data = SecretData(self.decrypt(unsealed, path, Some(base)).await?.data.0.clone());
        // A field the caller sets is theirs, so no longer non-exportable;
        // the rest of the marker carries over with the fields it covers.
        let given: Vec<&str> = changes.0.keys().map(String::as_str).collect();
        data.unmark_non_exportable(&given);
        data.0.extend(changes.0);
        Ok(Staging { replaces: meta.pending_version, meta: Some(meta), data })
    }

    /// Writes `staging` as the pending version; durable when it returns.
    /// Another rotation that staged first makes this one `cas_mismatch`.
    pub(crate) async fn stage(
        &self,
        _: &Admitted,
        unsealed: &Arc<Unsealed>,
        path: &str,
        staging: Staging,
        plan: &RotatePlan,
    ) -> Result<(SecretMeta, u64)> {
        let job = WriteJob {
            path: path.to_string(),
            plain: staging.data.encode(),
            cas: Some(staging.meta.as_ref().map(|m| m.latest_version).unwrap_or(0)),
            stage: Stage::Pending { replaces: staging.replaces },
            kind: plan.kind.clone(),
            rotation_period_s: plan.rotation_period_s,
            unsealed: unsealed.clone(),
        };
        self.writer.write(job).await.map_err(|e| match e.code {
            Code::CasMismatch => {
                Error::new(Code::CasMismatch, format!("{path} changed while this rotation was staged; run it again"))
            }
            _ => e,
        })
    }

    /// The pending version's number, or `no_rotation`.
    pub(crate) async fn pending_version(&self, path: &str) -> Result<(SecretMeta, u64)> {
        let meta = self.meta(path).await?.ok_or_else(|| no_secret(path))?;
        let pending = meta.pending_version.ok_or_else(|| nothing_pending(path))?;
        Ok((meta, pending))
    }

    /// Makes `pending` current and the current version previous, in one
    /// step: the next read (and signature) uses it; a request that already
    /// holds the old version finishes with it.
    pub(crate) async fn promote(&self, _: &Admitted, path: &str, pending: u64) -> Result<SecretMeta> {
        let result = self.store.promote_version(path, pending, self.clock.now_ms()).await;
        self.forget(path);
        result.map_err(|e| match e {
            StoreError::Conflict { .. } => {
                Error::new(Code::NoRotation, format!("version {pending} of {path} is no longer pending"))
            }
            other => other.into(),
        })
    }

    /// Makes the previous version current again (and the current one
    /// previous), in one step.
    pub(crate) async fn rollback(&self, _: &Admitted, path: &str) -> Result<SecretMeta> {
        let meta = self.meta(path).await?.ok_or_else(|| no_secret(path))?;
        if let Some(p) = meta.pending_version {
            return Err(Error::new(
                Code::RotationPending,
                format!(
                    "version {p} of {path} is pending: finish it (--promote or --verify) or drop it (--abandon) before a rollback"
                ),
            ));
        }
        let Some(previous) = meta.previous_version else {
            return Err(Error::new(Code::NoRotation, format!("{path} has no previous version to go back to")));
        };
        let result = self.store.rollback_version(path, meta.current_version, self.clock.now_ms()).await;
        self.forget(path);
        result.map_err(|e| match e {
            StoreError::Conflict { .. } => Error::new(
                Code::NoRotation,
                format!(
                    "{path} cannot go back to version {previous}: it changed, or that version is deleted or destroyed"
                ),
            ),
            other => other.into(),
        })
    }

    /// Destroys the pending version; returns its number and the secret as it
    /// is now (`None` when it had no current version and is gone).
    pub(crate) async fn abandon(&self, _: &Admitted, path: &str) -> Result<(u64, Option<SecretMeta>)> {
        let (_, pending) = self.pending_version(path).await?;
        let result = self.store.abandon_pending(path, pending).await;
        self.forget(path);
        match result {
            Ok(meta) => Ok((pending, meta)),
            Err(StoreError::Conflict { .. }) => Err(nothing_pending(path)),
            Err(e) => Err(e.into()),
        }
    }
}
