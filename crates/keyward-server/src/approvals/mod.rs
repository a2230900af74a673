//! M-of-N approvals: the changes that let funds leave an account or widen
//! what a key may do wait until M approver keys (keys holding `approve`)
//! other than the requester's have approved them.
//!
//! Gated: granting a key `withdraw`, `transfer`, `export`, `admin` (or `*`)
//! on an account, or `approve` itself; adding a withdrawal address; raising
//! or removing a withdrawal cap; changing an account's upstream; unfreezing
//! an account. Approvals are in force while at least M active approver keys
//! exist (`--approvals M`, 2 by default); before that, the operator enrols
//! approvers with `sys:admin`, and every change applies at once.
//!
//! Each request is one of keyward's documents (`_keyward/approvals/<id>`),
//! changed with check-and-set: two approvals racing on two nodes both see
//! the other, and exactly one of them moves the request to `approved`, so
//! the change applies exactly once. A request expires if not approved in
//! time (`--approval-ttl`, 24 hours by default); one rejection closes it.
//! Every step is on the audit log and alerts.

use crate::config::ApprovalConfig;
use crate::controls::{AllowedAddress, Controls};
use crate::error::{Code, Error, Result};
use crate::keys::{KEYWARD_NAMESPACE, KeyEntry, Keys};
use crate::seal::Unsealed;
use keyward_core::clock::{Clock, rfc3339};
use keyward_core::decision::DenyReason;
use keyward_core::policy::KeyState;
use keyward_core::scope::Scope;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Where approval requests live.
const PREFIX: &str = "_keyward/approvals/";

/// A change waiting for approvals.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum PendingChange {
    /// Enable a key created disabled because of its scopes.
    ActivateKey {
        /// The key.
        key_id: String,
        /// Its name.
        name: String,
        /// The scopes that needed approval.
        scopes: Vec<String>,
    },
    /// Add a withdrawal destination.
    AllowAddress {
        /// The account.
        account: String,
        /// The destination.
        address: AllowedAddress,
    },
    /// Raise (or remove: `None`) a withdrawal cap.
    SetCap {
        /// The account.
        account: String,
        /// The asset.
        asset: String,
        /// The new cap per 24 hours (`None`: no cap).
        cap: Option<String>,
    },
    /// Make a pending version of an exchange account current (it changes the upstream).
    PromoteVersion {
        /// The account's secret path.
        path: String,
        /// The pending version.
        version: u64,
    },
    /// Unfreeze an account.
    Unfreeze {
        /// The account.
        account: String,
    },
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ApprovalState {
    /// Waiting for approvals.
    Pending,
    /// Approved by enough keys; the change is being applied.
    Approved,
    /// Approved and applied.
    Applied,
    /// Approved, but applying it failed (see `result`).
    Failed,
    /// Rejected by an approver or withdrawn by its requester.
    Rejected,
    /// Not approved in time.
    Expired,
}

/// One approval or rejection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub(crate) struct Vote {
    /// The key that gave it.
    pub key_id: String,
    /// Its name.
    pub name: String,
    /// When (RFC 3339).
    pub at: String,
    /// From where.
    pub ip: String,
    /// Why (rejections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A request for approval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub(crate) struct Approval {
    /// `apr_…`.
    pub id: String,
    /// What it changes.
    pub change: PendingChange,
    /// The change in one line.
    pub summary: String,
    /// The key that asked.
    pub requested_by: String,
    /// When (RFC 3339).
    pub requested_at: String,
    /// When it expires (ms since the epoch).
    pub expires_ms: i64,
    /// Approvals it needs (M when it was asked).
    pub required: u32,
    /// Where it stands.
    pub state: ApprovalState,
    /// The approvals given, in order.
    #[serde(default)]
    pub approvals: Vec<Vote>,
    /// The rejection, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Vote>,
    /// What applying it did, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

impl Default for Approval {
    fn default() -> Self {
        Approval {
            id: String::new(),
            change: PendingChange::Unfreeze { account: String::new() },
            summary: String::new(),
            requested_by: String::new(),
            requested_at: String::new(),
            expires_ms: 0,
            required: 0,
            state: ApprovalState::Pending,
            approvals: Vec::new(),
            rejection: None,
            result: None,
        }
    }
}

impl Approval {
    /// Refuses an approval from the requester's own key, or a second one
    /// from a key that approved already (`approval_refused`).
    pub(crate) fn may_approve(&self, key_id: &str) -> Result<()> {
        if key_id == self.requested_by {
            return Err(Error::new(
                DenyReason::ApprovalRefused,
                format!("approval {} was requested by this key: approvals come from other approver keys", self.id),
            ));
        }
        if self.approvals.iter().any(|v| v.key_id == key_id) {
            return Err(Error::new(
                DenyReason::ApprovalRefused,
                format!("this key approved {} already: each approval comes from a distinct key", self.id),
            ));
        }
        Ok(())
    }
}

/// What a vote did.
#[derive(Debug)]
pub(crate) enum Voted {
    /// Counted; more approvals are needed.
    Counted(Approval),
    /// The last approval: the change is to be applied now, by this caller only.
    Apply(Approval),
    /// Rejected (closed).
    Rejected(Approval),
}

/// Who votes.
#[derive(Debug, Clone)]
pub(crate) struct Voter {
    /// The key.
    pub key_id: String,
    /// Its name.
    pub name: String,
    /// Its address.
    pub ip: String,
}

fn path_of(id: &str) -> Result<String> {
    let ok = id.starts_with("apr_") && id.len() <= 64 && id[4..].bytes().all(|b| b.is_ascii_alphanumeric());
    if ok { Ok(format!("{PREFIX}{id}")) } else { Err(Error::not_found(format!("no approval {id:?}"))) }
}

/// The approvals service.
#[derive(Debug)]
pub(crate) struct Approvals {
    controls: Arc<Controls>,
    keys: Arc<Keys>,
    clock: Arc<dyn Clock>,
    config: ApprovalConfig,
}

impl Approvals {
    /// The service.
    pub(crate) fn new(controls: Arc<Controls>, keys: Arc<Keys>, clock: Arc<dyn Clock>, config: ApprovalConfig) -> Self {
        Self { controls, keys, clock, config }
    }

    /// M.
    pub(crate) fn required(&self) -> u32 {
        self.config.required
    }

    /// The active approver keys (keyward's own keys holding `approve`).
    pub(crate) fn approvers(&self) -> Vec<Arc<KeyEntry>> {
        let now = self.clock.now_ms();
        self.keys
            .all_sorted()
            .unwrap_or_default()
            .into_iter()
            .filter(|k| {
                &*k.namespace == KEYWARD_NAMESPACE
                    && !k.tampered
                    && k.effective_state(now) == KeyState::Active
                    && k.policy.scopes.contains(&Scope::Approve)
            })
            .collect()
    }

    /// True while changes need approvals: M is set and at least M active
    /// approver keys exist.
    pub(crate) fn in_force(&self) -> bool {
        self.config.required > 0 && self.approvers().len() >= self.config.required as usize
    }

    /// Refuses a request `requester` could never see approved: fewer than
    /// M approver keys other than its own exist.
    pub(crate) fn check_available(&self, requester: &str) -> Result<()> {
        let others = self.approvers().iter().filter(|k| *k.id != *requester).count();
        let m = self.config.required;
        if others < m as usize {
            return Err(Error::new(
                Code::ApprovalsUnavailable,
                format!(
                    "this change needs {m} approvals from approver keys other than the requester's, and only {others} exist: create approver keys (scope approve) first"
                ),
            ));
        }
        Ok(())
    }

    /// Asks for approval of `change` on behalf of `requester` (see
    /// [`Approvals::check_available`]).
    pub(crate) async fn request(
        &self,
        unsealed: &Arc<Unsealed>,
        requester: &str,
        change: PendingChange,
        summary: String,
        id: Option<String>,
    ) -> Result<Approval> {
        self.check_available(requester)?;
        let m = self.config.required;
        let id = match id {
            Some(id) => id,
            None => new_id()?,
        };
        let now = self.clock.now_ms();
        let approval = Approval {
            id: id.clone(),
            change,
            summary,
            requested_by: requester.to_string(),
            requested_at: rfc3339(now),
            expires_ms: now + self.config.ttl.as_millis() as i64,
            required: m,
            state: ApprovalState::Pending,
            ..Approval::default()
        };
        let written = approval.clone();
        let (doc, ()) = self
            .controls
            .update_doc(unsealed, &path_of(&id)?, |a: &mut Approval| {
                if !a.id.is_empty() {
                    return Err(Error::internal("an approval id was drawn twice"));
                }
                *a = written.clone();
                Ok(())
            })
            .await?;
        Ok(doc)
    }

    /// A new id for a request made together with its change (a key created
    /// disabled names the approval that enables it).
    pub(crate) fn new_id(&self) -> Result<String> {
        new_id()
    }

    /// One request, as it stands (a pending one past its time shows as expired).
    pub(crate) async fn get(&self, unsealed: &Unsealed, id: &str) -> Result<Approval> {
        let mut a: Approval = self
            .controls
            .doc(unsealed, &path_of(id)?)
            .await?
            .ok_or_else(|| Error::not_found(format!("no approval {id:?}")))?;
        if a.state == ApprovalState::Pending && self.clock.now_ms() >= a.expires_ms {
            a.state = ApprovalState::Expired;
        }
        Ok(a)
    }

    /// Every request, newest first.
    pub(crate) async fn list(&self, unsealed: &Unsealed) -> Result<Vec<Approval>> {
        let mut out = Vec::new();
        for path in self.controls.doc_paths(PREFIX).await? {
            let id = path.trim_start_matches(PREFIX);
            out.push(self.get(unsealed, id).await?);
        }
        out.sort_by(|a, b| b.requested_at.cmp(&a.requested_at));
        Ok(out)
    }

    /// Approves (`reason` `None`) or rejects a request. An approval from
    /// the requester's key, or from a key that approved already, is
    /// refused; the approval that reaches M moves the request to
    /// `approved`, and only that caller gets [`Voted::Apply`].
    pub(crate) async fn vote(
        &self,
        unsealed: &Arc<Unsealed>,
        id: &str,
        voter: &Voter,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Voted> {
        let now = self.clock.now_ms();
        #[derive(PartialEq)]
        enum Step {
            Counted,
            Apply,
            Rejected,
            Expired,
        }
        let (doc, step) = self
            .controls
            .update_doc(unsealed, &path_of(id)?, |a: &mut Approval| {
                if a.id.is_empty() {
                    return Err(Error::not_found(format!("no approval {id:?}")));
                }
                match a.state {
                    ApprovalState::Pending if now >= a.expires_ms => {
                        a.state = ApprovalState::Expired;
                        return Ok(Step::Expired);
                    }
                    ApprovalState::Pending => {}
                    ApprovalState::Expired => return Err(expired(a)),
                    other => {
                        return Err(Error::new(
                            Code::ApprovalClosed,
                            format!("approval {id} is {}: nothing more can be given", state_name(other)),
                        ));
                    }
                }
                let vote = Vote {
                    key_id: voter.key_id.clone(),
                    name: voter.name.clone(),
                    at: rfc3339(now),
                    ip: voter.ip.clone(),
                    reason: reason.clone(),
                };
                if !approve {
                    a.state = ApprovalState::Rejected;
                    a.rejection = Some(vote);
                    return Ok(Step::Rejected);
                }
                a.may_approve(&voter.key_id)?;
                a.approvals.push(vote);
                if a.approvals.len() >= a.required as usize {
                    a.state = ApprovalState::Approved;
                    Ok(Step::Apply)
                } else {
                    Ok(Step::Counted)
                }
            })
            .await?;
        Ok(match step {
            Step::Expired => return Err(expired(&doc)),
            Step::Counted => Voted::Counted(doc),
            Step::Apply => Voted::Apply(doc),
            Step::Rejected => Voted::Rejected(doc),
        })
    }

    /// Records what applying an approved request did.
    pub(crate) async fn finish(&self, unsealed: &Arc<Unsealed>, id: &str, result: &Result<String>) -> Result<Approval> {
        let (doc, ()) = self
            .controls
            .update_doc(unsealed, &path_of(id)?, |a: &mut Approval| {
                a.state = if result.is_ok() { ApprovalState::Applied } else { ApprovalState::Failed };
                a.result = Some(match result {
                    Ok(done) => done.clone(),
                    Err(e) => format!("{} ({})", e.message, e.code.as_str()),
                });
                Ok(())
            })
            .await?;
        Ok(doc)
    }

    /// Marks every pending request past its time expired; returns them (for
    /// their clean-up: a key created for one is revoked).
    pub(crate) async fn expire_due(&self, unsealed: &Arc<Unsealed>) -> Result<Vec<Approval>> {
        let now = self.clock.now_ms();
        let mut expired = Vec::new();
        for a in self.list(unsealed).await? {
            if a.state != ApprovalState::Expired {
                continue;
            }
            let (doc, changed) = self
                .controls
                .update_doc(unsealed, &path_of(&a.id)?, |d: &mut Approval| {
                    let due = d.state == ApprovalState::Pending && now >= d.expires_ms;
                    if due {
                        d.state = ApprovalState::Expired;
                    }
                    Ok(due)
                })
                .await?;
            if changed {
                expired.push(doc);
            }
        }
        Ok(expired)
    }
}

fn expired(a: &Approval) -> Error {
    Error::new(
        Code::ApprovalExpired,
        format!("approval {} expired at {} without enough approvals; ask again", a.id, rfc3339(a.expires_ms)),
    )
}

/// The state's name, as the API writes it.
pub(crate) fn state_name(s: ApprovalState) -> &'static str {
    match s {
        ApprovalState::Pending => "pending",
        ApprovalState::Approved => "approved",
        ApprovalState::Applied => "applied",
        ApprovalState::Failed => "failed",
        ApprovalState::Rejected => "rejected",
        ApprovalState::Expired => "expired",
    }
}

fn new_id() -> Result<String> {
    Ok(format!("apr_{}", keyward_core::base62::random_string(16)?))
}
