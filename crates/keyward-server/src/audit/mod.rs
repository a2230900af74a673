//! The audit trail: one entry for every decision, allowed or denied,
//! failed authentications included, chained and group-committed by one
//! writer task (see `writer`), then handed to the sinks and the alert rules.
//!
//! The pipeline tells each request's entry what it decided through a typed
//! [`Record`]: who called, on what, which class, whether it was admitted;
//! the HTTP edge adds the stable code of the answer. Nothing is inferred
//! from a status or parsed again from a URL. Entries hold key ids, never
//! keys; no secret value, signature or key is ever written here.

pub mod archive;
pub(crate) mod forensic;
pub(crate) mod retention;
mod sinks;
mod verify;
mod writer;

pub(crate) use sinks::Sinks;
pub(crate) use verify::verify_log;
pub(crate) use writer::Auditor;

use keyward_core::audit::AuditEntry;
use keyward_core::scope::Class;
use std::sync::{Arc, Mutex};

/// What an entry says was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Authorized and admitted (the code, if any, is how acting on it failed).
    Allow,
    /// Refused, with the refusal's code.
    Deny,
    /// What became of an allowed exchange request (the upstream's status, or why it failed).
    Outcome,
}

impl Verdict {
    /// `allow`, `deny` or `outcome`, as stored.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Outcome => "outcome",
        }
    }
}

/// What the pipeline noted about a request, for its entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct Note {
    /// The request id shared by the request's entries (also `X-Request-Id`).
    pub request_id: String,
    /// The route's action (`secrets.get`), from the route table.
    pub action: &'static str,
    /// The caller's key id, once identified.
    pub key_id: String,
    /// The client address as identification saw it.
    pub ip: String,
    /// Permission class (exchange requests, exports).
    pub class: Option<Class>,
    /// What the request acts on, when more precise than the path.
    pub target: Option<String>,
    /// The entry must be durable before the answer goes out.
    pub sensitive: bool,
    /// JSON extras (order fields).
    pub detail: String,
    /// Authorized and admitted.
    pub allowed: bool,
    /// The handler wrote its own entries (the proxy's decision and outcome).
    pub recorded: bool,
}

impl Note {
    /// The entry for this note: `verdict` with `code`; `target` unless the
    /// pipeline named a more precise one.
    pub(crate) fn entry(&self, verdict: Verdict, code: &str, target: &str) -> AuditEntry {
        self.clone().into_entry(verdict, code, || target.to_string())
    }

    /// [`Note::entry`], consuming the note (no copies on the hot path).
    pub(crate) fn into_entry(self, verdict: Verdict, code: &str, target: impl FnOnce() -> String) -> AuditEntry {
        AuditEntry {
            request_id: self.request_id,
            key_id: self.key_id,
            ip: self.ip,
            action: self.action.to_string(),
            target: self.target.unwrap_or_else(target),
            class: self.class.map(|c| c.as_str().to_string()).unwrap_or_default(),
            decision: verdict.as_str().to_string(),
            code: code.to_string(),
            detail: self.detail,
            ..Default::default()
        }
    }
}

/// The request's audit record, shared between the edge and the pipeline.
#[derive(Debug, Clone, Default)]
pub(crate) struct Record(Arc<Mutex<Note>>);

impl Record {
    /// A record for a request with this id and action.
    pub(crate) fn new(request_id: String, action: &'static str) -> Self {
        Self(Arc::new(Mutex::new(Note { request_id, action, ..Default::default() })))
    }

    /// The route's action, once the router knows the route.
    pub(crate) fn action(&self, action: &'static str) {
        self.with(|n| n.action = action);
    }

    fn with(&self, f: impl FnOnce(&mut Note)) {
        if let Ok(mut n) = self.0.lock() {
            f(&mut n);
        }
    }

    /// The client address, as identification resolved it.
    pub(crate) fn client(&self, ip: std::net::IpAddr) {
        self.with(|n| n.ip = ip.to_string());
    }

    /// The key presented (for a token: its parent), as soon as it is known,
    /// so a refusal of a revoked or expired key names it.
    pub(crate) fn key(&self, key_id: &str) {
        self.with(|n| n.key_id = key_id.to_string());
    }

    /// What the request acts on.
    pub(crate) fn target(&self, target: impl Into<String>) {
        let t = target.into();
        self.with(|n| n.target = Some(t));
    }

    /// The permission class; a sensitive class makes the entry sensitive.
    pub(crate) fn class(&self, class: Class) {
        self.with(|n| {
            n.class = Some(class);
            n.sensitive |= class.is_sensitive();
        });
    }

    /// The entry must be durable before the answer.
    pub(crate) fn sensitive(&self) {
        self.with(|n| n.sensitive = true);
    }

    /// JSON extras.
    pub(crate) fn detail(&self, detail: String) {
        self.with(|n| n.detail = detail);
    }

    /// Authorized and admitted.
    pub(crate) fn allow(&self) {
        self.with(|n| n.allowed = true);
    }

    /// The handler wrote its own entries.
    pub(crate) fn recorded(&self) {
        self.with(|n| n.recorded = true);
    }

    /// The request's id.
    pub(crate) fn request_id(&self) -> String {
        self.0.lock().map(|n| n.request_id.clone()).unwrap_or_default()
    }

    /// What was noted so far.
    pub(crate) fn note(&self) -> Note {
        self.0.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// What was noted, taken out (the request is over).
    pub(crate) fn take(&self) -> Note {
        self.0.lock().map(|mut n| std::mem::take(&mut *n)).unwrap_or_default()
    }
}
